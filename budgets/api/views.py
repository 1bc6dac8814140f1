"""Budgets API: envelopes, channels, alerts (with acknowledgement), the cost series and
the runtime budget check.

Authentication (the API's defaults): a login session, HTTP Basic, a personal token
(`Authorization: Token <token>`) or a project's ingest key (`Authorization: Bearer <key>`),
which reads its own project and never writes.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, generics
from rest_framework.response import Response
from rest_framework.views import APIView

from budgets.api.permissions import (
    PeopleWrite,
    ProjectKeyOnly,
    StaffOnly,
    StaffWritesMembersRead,
    is_project_key,
)
from budgets.api.serializers import (
    AlertsAcknowledgeSerializer,
    AlertSerializer,
    BudgetCheckAnswerSerializer,
    BudgetCheckSerializer,
    ChannelSerializer,
    EnvelopeSerializer,
    SnoozeSerializer,
)
from budgets.models import Alert
from budgets.runtime import budget_check
from budgets.selectors import (
    BUCKET_SIZES,
    GROUP_BYS,
    MAX_BUCKETS,
    MAX_WINDOW,
    GroupSums,
    alert_get_for_user,
    alert_list_for_user,
    bucket_for_window,
    bucket_starts,
    channel_list_for_user,
    cost_series,
    envelope_get_for_user,
    envelope_list_for_user,
)
from budgets.services import (
    alert_acknowledge,
    alerts_acknowledge,
    channel_mute,
    channel_unmute,
    envelope_snooze,
    envelope_unsnooze,
)
from traces.display import known_cost
from traces.models import Membership
from traces.selectors import TraceFilters, project_list_for_user, project_role_for_user

# ------------------------------------------------------------------ envelopes


@extend_schema(parameters=[OpenApiParameter("project", str, description="Project slug")])
class EnvelopeListView(generics.ListCreateAPIView):
    """Budget envelopes of the projects you can see; staff users create them."""

    serializer_class = EnvelopeSerializer
    permission_classes = [StaffWritesMembersRead]

    def get_queryset(self):
        return envelope_list_for_user(
            user=self.request.user, project_slug=self.request.query_params.get("project", "")
        ).prefetch_related("channels")


class EnvelopeDetailView(generics.RetrieveUpdateDestroyAPIView):
    """One envelope; staff users change or delete it."""

    serializer_class = EnvelopeSerializer
    permission_classes = [StaffWritesMembersRead]

    def get_queryset(self):
        return envelope_list_for_user(user=self.request.user).prefetch_related("channels")


class BudgetCheckView(APIView):
    """May the agent spend this now? Answered with the project key, from each covering
    envelope's last evaluation and the run's current cost (see budgets/runtime.py)."""

    permission_classes = [ProjectKeyOnly]

    @extend_schema(request=BudgetCheckSerializer, responses=BudgetCheckAnswerSerializer)
    def post(self, request):
        question = BudgetCheckSerializer(data=request.data)
        question.is_valid(raise_exception=True)
        answer = budget_check(
            project_id=request.user.project_id, now=timezone.now(), **question.validated_data
        )
        return Response(
            {
                "allow": answer.allow,
                "reason": answer.reason,
                "envelopes": [
                    {
                        "name": e.name,
                        "metric": e.metric,
                        # Fixed notation: str() of a zero Decimal is "0E-10".
                        "remaining": f"{e.remaining:.10f}",
                        "state": e.state,
                    }
                    for e in answer.envelopes
                ],
            }
        )


# ------------------------------------------------------------------ channels


class _ChannelMixin:
    serializer_class = ChannelSerializer
    permission_classes = [StaffOnly]

    def get_queryset(self):
        return channel_list_for_user(user=self.request.user)

    def get_serializer_context(self):
        # The webhook secret is shown once: in the answer to the request that created it.
        return {**super().get_serializer_context(), "reveal_secret": self.request.method == "POST"}


@extend_schema(parameters=[OpenApiParameter("project", str, description="Project slug")])
class ChannelListView(_ChannelMixin, generics.ListCreateAPIView):
    """Notification channels (staff users only)."""

    def get_queryset(self):
        return channel_list_for_user(
            user=self.request.user, project_slug=self.request.query_params.get("project", "")
        )


class ChannelDetailView(_ChannelMixin, generics.RetrieveUpdateDestroyAPIView):
    """One channel (staff users only)."""


# ------------------------------------------------------------------ alerts

ALERT_PARAMS = [
    OpenApiParameter("status", str, enum=list(Alert.Status.values)),
    OpenApiParameter("project", str, description="Project slug"),
    OpenApiParameter("envelope", int, description="Envelope id"),
]


@extend_schema(parameters=ALERT_PARAMS)
class AlertListView(generics.ListAPIView):
    """Alerts of the projects you can see, newest first."""

    serializer_class = AlertSerializer
    permission_classes = [PeopleWrite]

    def get_queryset(self):
        params = self.request.query_params
        status = params.get("status", "").strip()
        errors = {}
        if status and status not in Alert.Status.values:
            errors["status"] = [f"Must be one of {', '.join(Alert.Status.values)}."]
        envelope = params.get("envelope", "").strip()
        if envelope and not envelope.isdigit():
            errors["envelope"] = ["Must be an envelope id."]
        if errors:
            raise exceptions.ValidationError(errors)
        return alert_list_for_user(
            user=self.request.user,
            status=status,
            project_slug=params.get("project", "").strip(),
            envelope_id=int(envelope) if envelope else None,
        ).prefetch_related("deliveries__channel", "covers")


class AlertDetailView(generics.RetrieveAPIView):
    serializer_class = AlertSerializer
    permission_classes = [PeopleWrite]

    def get_object(self):
        alert = alert_get_for_user(user=self.request.user, alert_id=self.kwargs["pk"])
        self.check_object_permissions(self.request, alert)
        return alert


class AlertAcknowledgeView(APIView):
    """Acknowledge a firing alert: records who and when. Idempotent: acknowledging again,
    or a resolved alert, changes nothing and answers the alert as it is."""

    permission_classes = [PeopleWrite]

    @extend_schema(request=None, responses=AlertSerializer)
    def post(self, request, pk: int):
        alert = alert_get_for_user(user=request.user, alert_id=pk)
        result = alert_acknowledge(alert_id=alert.pk, user=request.user)
        return Response(AlertSerializer(result.alert, context={"request": request}).data)


class AlertsAcknowledgeView(APIView):
    """Acknowledge several alerts at once: `{"ids": [1, 2, 3]}`. Answers the ids that
    were acknowledged now and those left as they were (already acknowledged, resolved,
    or not an alert you can see)."""

    permission_classes = [PeopleWrite]

    @extend_schema(
        operation_id="alerts_acknowledge_many",
        request=AlertsAcknowledgeSerializer,
        responses=OpenApiTypes.OBJECT,
    )
    def post(self, request):
        body = AlertsAcknowledgeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        ids = list(dict.fromkeys(body.validated_data["ids"]))
        visible = alert_list_for_user(user=request.user).filter(pk__in=ids)
        changed = alerts_acknowledge(
            alert_ids=list(visible.values_list("pk", flat=True)), user=request.user
        )
        return Response(
            {"acknowledged": sorted(changed), "unchanged": sorted(set(ids) - set(changed))}
        )


# ------------------------------------------------------------------ snooze and mute


def _require_project_admin(user, project) -> None:
    if is_project_key(user) or (
        project_role_for_user(user=user, project=project) != Membership.Role.ADMIN
    ):
        raise exceptions.PermissionDenied(
            "Only the project's admins may snooze budgets and mute channels."
        )


class EnvelopeSnoozeView(APIView):
    """POST: snooze the envelope (`{"minutes": 60}` or `{"until": "<ISO 8601>"}`): its
    alerts are still raised, their deliveries recorded as skipped. DELETE: unsnooze.
    Project admins and staff."""

    permission_classes = [PeopleWrite]

    def _envelope(self, request, pk: int):
        envelope = envelope_get_for_user(user=request.user, envelope_id=pk)
        _require_project_admin(request.user, envelope.project)
        return envelope

    @extend_schema(request=SnoozeSerializer, responses=EnvelopeSerializer)
    def post(self, request, pk: int):
        envelope = self._envelope(request, pk)
        body = SnoozeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        until = data.get("until") or timezone.now() + timedelta(minutes=data["minutes"])
        try:
            envelope_snooze(envelope=envelope, until=until, user=request.user)
        except ValueError as exc:
            raise exceptions.ValidationError({"until": [str(exc)]}) from None
        return Response(EnvelopeSerializer(envelope, context={"request": request}).data)

    @extend_schema(request=None, responses=EnvelopeSerializer)
    def delete(self, request, pk: int):
        envelope = self._envelope(request, pk)
        envelope_unsnooze(envelope=envelope)
        return Response(EnvelopeSerializer(envelope, context={"request": request}).data)


class ChannelMuteView(APIView):
    """POST: mute the channel (it receives nothing; deliveries recorded as skipped).
    DELETE: unmute. Project admins and staff."""

    permission_classes = [PeopleWrite]

    def _channel(self, request, pk: int):
        channel = channel_list_for_user(user=request.user).filter(pk=pk).first()
        if channel is None:
            raise exceptions.NotFound("No such channel.")
        _require_project_admin(request.user, channel.project)
        return channel

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request, pk: int):
        channel = self._channel(request, pk)
        channel_mute(channel=channel, user=request.user)
        return Response({"id": channel.pk, "muted_at": channel.muted_at})

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def delete(self, request, pk: int):
        channel = self._channel(request, pk)
        channel_unmute(channel=channel)
        return Response({"id": channel.pk, "muted_at": None})


# ------------------------------------------------------------------ cost series

COST_PARAMS = [
    OpenApiParameter("project", str, description="Project slug (optional with one project)"),
    OpenApiParameter("since", OpenApiTypes.DATETIME, description="Default: 24 hours ago"),
    OpenApiParameter("until", OpenApiTypes.DATETIME, description="Default: now"),
    OpenApiParameter("group_by", str, enum=list(GROUP_BYS)),
    OpenApiParameter("bucket", str, enum=list(BUCKET_SIZES), description="Default from window"),
    OpenApiParameter("tz", str, description="IANA zone hours and days are counted in"),
]


def _money(value: Decimal) -> str:
    return f"{Decimal(value).quantize(Decimal('0.0000000001')):f}"  # never "0E-10"


def _known_money(value: Decimal, unpriced: int) -> str | None:
    """Null when the only model calls had no known price: unknown, not free."""
    known = known_cost(value, unpriced)
    return None if known is None else _money(known)


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _sums(g: GroupSums, *, latency: bool = True) -> dict:
    out = {
        "cost_usd": _known_money(g.cost_usd, g.unpriced),
        "tokens": g.tokens,
        "input_tokens": g.input_tokens,
        "output_tokens": g.output_tokens,
        "runs": g.runs,
        "errors": g.errors,
        "unpriced": g.unpriced,
        "llm_calls": g.llm_calls,
    }
    if latency:
        out |= {
            "p50_ms": _ms(g.latency_ms(0.5)),
            "p95_ms": _ms(g.latency_ms(0.95)),
            "p99_ms": _ms(g.latency_ms(0.99)),
        }
    return out


class CostSeriesView(APIView):
    """Cost, tokens, runs, failed runs, unpriced model calls and run latency
    percentiles per time bucket, from the 15-minute rollups; optionally split by agent
    or model. `errors` counts failed runs; `unpriced` counts model calls with no known
    price, whose cost is not in `cost_usd`."""

    permission_classes = [PeopleWrite]

    @extend_schema(parameters=COST_PARAMS, responses=OpenApiTypes.OBJECT)
    def get(self, request):
        params = request.query_params
        errors: dict[str, list[str]] = {}
        filters = TraceFilters.from_params(
            {"since": params.get("since", ""), "until": params.get("until", "")}
        )
        for message in filters.errors or []:
            errors.setdefault(message.split(" ", 1)[0], []).append(message)
        group_by = params.get("group_by", "").strip()
        if group_by and group_by not in GROUP_BYS:
            errors["group_by"] = [f"Must be one of {', '.join(GROUP_BYS)}."]
        bucket = params.get("bucket", "").strip()
        if bucket and bucket not in BUCKET_SIZES:
            errors["bucket"] = [f"Must be one of {', '.join(BUCKET_SIZES)}."]
        tz_name = params.get("tz", "").strip() or timezone.get_current_timezone_name()
        try:
            tz = ZoneInfo(tz_name)
        except (ZoneInfoNotFoundError, ValueError):
            errors["tz"] = [f"{tz_name!r} is not an IANA time zone."]
            tz = ZoneInfo("UTC")
        until = filters.until or timezone.now()
        since = filters.since or until - timedelta(hours=24)
        if "since" not in errors and "until" not in errors:
            if since >= until:
                errors["since"] = ["Must be before until."]
            elif until - since > MAX_WINDOW:
                errors["since"] = [f"The window is at most {MAX_WINDOW.days} days."]
        if errors:
            raise exceptions.ValidationError(errors)
        bucket = bucket or bucket_for_window(until - since)
        if len(bucket_starts(start=since, end=until, bucket=bucket, tz=tz)) > MAX_BUCKETS:
            raise exceptions.ValidationError(
                {"bucket": [f"More than {MAX_BUCKETS} buckets: choose a larger bucket."]}
            )
        project = self._project(request)
        series = cost_series(
            project=project,
            start=since,
            end=until,
            bucket=bucket,
            tz=tz,
            group_by=group_by or "agent",
        )
        ends = [b.start for b in series.buckets[1:]] + [until]
        body = {
            "project": project.slug,
            "since": since,
            "until": until,
            "bucket": bucket,
            "timezone": tz.key,
            "group_by": group_by or None,
            "totals": _sums(series.totals),
            "buckets": [],
        }
        if group_by:
            body["groups"] = [
                {"key": key, **_sums(series.group_totals[key], latency=group_by == "agent")}
                for key in series.groups
            ]
        for b, end in zip(series.buckets, ends, strict=True):
            item = {"start": b.start, "end": end, **_sums(b)}
            if group_by:
                item["groups"] = [
                    {"key": key, **_sums(b.groups[key], latency=False)}
                    for key in series.groups
                    if key in b.groups
                ]
            body["buckets"].append(item)
        return Response(body)

    def _project(self, request):
        projects = project_list_for_user(user=request.user)
        slug = request.query_params.get("project", "").strip()
        if slug:
            project = projects.filter(slug=slug).first()
            if project is None:
                raise exceptions.NotFound("No such project.")
            return project
        found = list(projects[:2])
        if len(found) == 1:
            return found[0]
        if not found:
            raise exceptions.NotFound("No project.")
        raise exceptions.ValidationError({"project": ["You can see several projects: pass one."]})
