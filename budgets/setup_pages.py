"""Setting budgets up in the console: envelopes and alert channels created and edited by a
project's admins, channels listed with their last delivery attempts, and a test alert sent
from a channel's page.

The rules are the API's: each form is handed to `EnvelopeSerializer` or `ChannelSerializer`
(which call `budgets.validation.envelope_clean` and `budgets.transports.validate_config`,
the webhook URL safety check included) and saved by it. The views only turn form fields into
the API's values (thresholds typed "50, 80, 100", one address a line, "Name: value"
headers) and the API's errors back onto the fields. Members read; admins write (403
otherwise); every lookup goes through the user's projects (404 otherwise).
"""

from __future__ import annotations

import re
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from budgets.api.serializers import ChannelSerializer, EnvelopeSerializer
from budgets.models import BudgetEnvelope, Channel, DeliveryAttempt
from budgets.notify import channel_enable, channel_send_test
from budgets.selectors import channel_list_for_user, envelope_get_for_user
from budgets.transports import TransportError
from budgets.transports.webhook import SIGNATURE_HEADER
from budgets.validation import ThresholdsField, timezone_names
from traces.models import Membership, Project
from traces.selectors import project_from_query, project_role_for_user

RECENT_ATTEMPTS = 10
ENVELOPE_TEXT = (
    "name",
    "description",
    "agent",
    "model",
    "service_name",
    "attribute",
    "attribute_value",
    "metric",
    "limit",
    "period",
    "rolling_minutes",
    "timezone",
    "thresholds",
)
# The settings each kind of channel takes on the page, named as in its config.
KIND_FIELDS = {
    Channel.Kind.EMAIL: ("to",),
    Channel.Kind.SLACK: ("webhook_url",),
    Channel.Kind.WEBHOOK: ("url", "secret", "headers"),
}
# How a kind reads inside a sentence ("New Slack channel").
KIND_NAMES = {
    Channel.Kind.EMAIL: "e-mail",
    Channel.Kind.SLACK: "Slack",
    Channel.Kind.WEBHOOK: "webhook",
}
_ADDRESS_SPLIT = re.compile(r"[\s,;]+")


# ------------------------------------------------------------------ access


def is_project_admin(*, user, project: Project) -> bool:
    return project_role_for_user(user=user, project=project) == Membership.Role.ADMIN


def _require_admin(request, project: Project, what: str) -> None:
    if not is_project_admin(user=request.user, project=project):
        raise PermissionDenied(f"Only the project's admins {what}.")


def _project(request) -> tuple[list[Project], Project]:
    projects, project = project_from_query(user=request.user, slug=request.GET.get("project", ""))
    if project is None:
        raise Http404("No project")
    return projects, project


def _channel_get(request, channel_id: int) -> Channel:
    channel = channel_list_for_user(user=request.user).filter(pk=channel_id).first()
    if channel is None:
        raise Http404("No such channel")
    return channel


def _errors(errors: Any) -> dict[str, list[str]]:
    """A serializer's errors as {field: [text]}; "__all__" for the form as a whole."""
    if isinstance(errors, list):
        return {"__all__": [str(e) for e in errors]}
    out: dict[str, list[str]] = {}
    for key, value in errors.items():
        name = "__all__" if key == "non_field_errors" else key
        if isinstance(value, dict):
            for sub, texts in value.items():
                out.setdefault(f"{name}.{sub}", []).extend(str(t) for t in texts)
        else:
            out.setdefault(name, []).extend(str(t) for t in value)
    return out


# ------------------------------------------------------------------ envelopes


def _envelope_form(envelope: BudgetEnvelope | None) -> dict[str, Any]:
    if envelope is None:
        return {
            "metric": BudgetEnvelope.Metric.COST,
            "period": BudgetEnvelope.Period.MONTH,
            "timezone": "UTC",
            "thresholds": "50, 80, 100",
            "enabled": True,
            "forecast": True,
            "channels": [],
        }
    form = {name: getattr(envelope, name) for name in ENVELOPE_TEXT}
    form["limit"] = f"{envelope.limit.normalize():f}"
    form["rolling_minutes"] = envelope.rolling_minutes or ""
    form["thresholds"] = ThresholdsField().prepare_value(envelope.thresholds)
    form.update(
        enabled=envelope.enabled,
        forecast=envelope.forecast,
        channels=[c.pk for c in envelope.channels.all()],
    )
    return form


def _envelope_post(request) -> tuple[dict[str, Any], dict[str, Any], dict[str, list[str]]]:
    """(what the form shows again, the API's data, errors found while reading the form)."""
    form: dict[str, Any] = {name: request.POST.get(name, "") for name in ENVELOPE_TEXT}
    form["enabled"] = request.POST.get("enabled") == "on"
    form["forecast"] = request.POST.get("forecast") == "on"
    form["channels"] = request.POST.getlist("channels")
    data: dict[str, Any] = {k: v.strip() for k, v in form.items() if isinstance(v, str)}
    data.update(enabled=form["enabled"], forecast=form["forecast"], channels=form["channels"])
    data["rolling_minutes"] = data["rolling_minutes"] or None
    errors: dict[str, list[str]] = {}
    try:
        data["thresholds"] = ThresholdsField().to_python(data["thresholds"])
    except ValidationError as exc:
        errors["thresholds"] = exc.messages
        del data["thresholds"]
    form["channels"] = [int(c) for c in form["channels"] if c.isdigit()]
    return form, data, errors


def _envelope_save(request, *, project: Project, envelope: BudgetEnvelope | None):
    """Validate the POSTed form with the API's serializer; save when it passes."""
    form, data, errors = _envelope_post(request)
    data["project"] = project.slug
    serializer = EnvelopeSerializer(envelope, data=data)
    # Only this project's channels: another project's id reads as an unknown one.
    serializer.fields["channels"].child_relation.queryset = Channel.objects.filter(project=project)
    valid = serializer.is_valid()
    if not valid:
        for name, texts in _errors(serializer.errors).items():
            errors.setdefault(name.split(".", 1)[0], []).extend(texts)
    if errors:
        return form, errors, None
    return form, errors, serializer.save()


def _envelope_render(request, *, project, projects, envelope, form, errors):
    return render(
        request,
        "budgets/setup/envelope_form.html",
        {
            "project": project,
            "nav_projects": projects,
            "envelope": envelope,
            "form": form,
            "errors": errors,
            "general_errors": errors.get("__all__", []),
            "metrics": BudgetEnvelope.Metric.choices,
            "periods": BudgetEnvelope.Period.choices,
            "attributes": BudgetEnvelope.Attribute.choices,
            "channels": list(Channel.objects.filter(project=project).order_by("name")),
            "timezones": sorted(timezone_names()),
        },
        status=400 if errors else 200,
    )


def envelope_create_page(request):
    projects, project = _project(request)
    _require_admin(request, project, "create budgets")
    form, errors = _envelope_form(None), {}
    if request.method == "POST":
        form, errors, envelope = _envelope_save(request, project=project, envelope=None)
        if envelope is not None:
            messages.success(request, f"Budget “{envelope.name}” created.")
            return redirect("budget-detail", envelope_id=envelope.pk)
    return _envelope_render(
        request, project=project, projects=projects, envelope=None, form=form, errors=errors
    )


def envelope_edit_page(request, envelope_id: int):
    envelope = envelope_get_for_user(user=request.user, envelope_id=envelope_id)
    project = envelope.project
    _require_admin(request, project, "change budgets")
    form, errors = _envelope_form(envelope), {}
    if request.method == "POST":
        form, errors, saved = _envelope_save(request, project=project, envelope=envelope)
        if saved is not None:
            messages.success(request, f"Budget “{saved.name}” saved.")
            return redirect("budget-detail", envelope_id=saved.pk)
    projects, _ = project_from_query(user=request.user, slug=project.slug)
    return _envelope_render(
        request, project=project, projects=projects, envelope=envelope, form=form, errors=errors
    )


# ------------------------------------------------------------------ channels


def channel_destination(channel: Channel) -> str:
    """Where the channel sends, in words; never its secret."""
    config = channel.config or {}
    if channel.kind == Channel.Kind.EMAIL:
        return ", ".join(str(a) for a in config.get("to", []) or [])
    if channel.kind == Channel.Kind.SLACK:
        url = str(config.get("webhook_url", ""))
        return url.split("/services/", 1)[0] + "/services/…" if "/services/" in url else url
    return str(config.get("url", ""))


def _channel_form(channel: Channel | None, kind: str) -> dict[str, Any]:
    if channel is None:
        return {
            "kind": kind,
            "enabled": True,
            "to": "",
            "webhook_url": "",
            "url": "",
            "headers": "",
        }
    config = channel.config or {}
    return {
        "name": channel.name,
        "kind": channel.kind,
        "enabled": channel.enabled,
        "to": "\n".join(config.get("to", []) or []),
        "webhook_url": config.get("webhook_url", ""),
        "url": config.get("url", ""),
        "headers": "\n".join(f"{k}: {v}" for k, v in (config.get("headers") or {}).items()),
        "has_secret": bool(config.get("secret")),
    }


def _headers_parse(text: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise ValidationError(f"Line {number}: write one header a line, as Name: value.")
        headers[name.strip()] = value.strip()
    return headers


def _channel_post(request, kind: str) -> tuple[dict[str, Any], dict[str, Any], dict]:
    form: dict[str, Any] = {
        name: request.POST.get(name, "") for name in ("name", "to", "webhook_url", "url", "headers")
    }
    form["kind"] = kind
    form["enabled"] = request.POST.get("enabled") == "on"
    config: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    if kind == Channel.Kind.EMAIL:
        config["to"] = [a for a in _ADDRESS_SPLIT.split(form["to"]) if a]
    elif kind == Channel.Kind.SLACK:
        config["webhook_url"] = form["webhook_url"].strip()
    elif kind == Channel.Kind.WEBHOOK:
        config["url"] = form["url"].strip()
        secret = request.POST.get("secret", "").strip()
        if secret:  # empty: the stored secret is kept, or one is generated
            config["secret"] = secret
        try:
            config["headers"] = _headers_parse(form["headers"])
        except ValidationError as exc:
            errors["headers"] = exc.messages
    data = {
        "name": form["name"].strip(),
        "kind": kind,
        "config": config,
        "enabled": form["enabled"],
    }
    return form, data, errors


def _channel_save(request, *, project: Project, channel: Channel | None, kind: str):
    form, data, errors = _channel_post(request, kind)
    data["project"] = project.slug
    serializer = ChannelSerializer(channel, data=data)
    if not serializer.is_valid():
        for name, texts in _errors(serializer.errors).items():
            # Config errors are keyed by setting ("config.to.1", "config.url"): each goes
            # beside its field; errors of the settings as a whole go on top.
            parts = name.split(".")
            field = parts[1] if parts[0] == "config" and len(parts) > 1 else parts[0]
            if field in ("config", "kind", "project"):
                field = "__all__"
            errors.setdefault(field, []).extend(texts)
    if errors:
        return form, errors, None
    saved = serializer.save()
    if saved.enabled and (saved.disabled_at or saved.disabled_reason):
        channel_enable(channel=saved)  # enabled again by hand: the old reason is gone
    return form, errors, saved


def _channel_render(request, *, project, projects, channel, form, errors):
    return render(
        request,
        "budgets/setup/channel_form.html",
        {
            "project": project,
            "nav_projects": projects,
            "channel": channel,
            "form": form,
            "errors": errors,
            "general_errors": errors.get("__all__", []),
            "kind_label": Channel.Kind(form["kind"]).label,
            "kind_name": KIND_NAMES[form["kind"]],
            "fields": KIND_FIELDS[form["kind"]],
            "signature_header": SIGNATURE_HEADER,
        },
        status=400 if errors else 200,
    )


def channel_list_page(request):
    projects, project = _project(request)
    channels = list(
        channel_list_for_user(user=request.user, project_slug=project.slug).annotate(
            envelope_count=Count("envelopes")
        )
    )
    is_admin = is_project_admin(user=request.user, project=project)
    return render(
        request,
        "budgets/setup/channel_list.html",
        {
            "project": project,
            "nav_projects": projects,
            "rows": [{"channel": c, "destination": channel_destination(c)} for c in channels],
            "is_admin": is_admin,
            "kinds": list(KIND_NAMES.items()),
        },
    )


def channel_create_page(request):
    projects, project = _project(request)
    _require_admin(request, project, "add channels")
    kind = request.GET.get("kind", "")
    if kind not in KIND_FIELDS:
        return redirect(f"{reverse('channel-list')}?project={project.slug}")
    form, errors = _channel_form(None, kind), {}
    if request.method == "POST":
        form, errors, channel = _channel_save(request, project=project, channel=None, kind=kind)
        if channel is not None:
            messages.success(request, f"Channel “{channel.name}” created.")
            if kind == Channel.Kind.WEBHOOK and not request.POST.get("secret", "").strip():
                messages.warning(
                    request,
                    f"A signing secret was generated: {channel.config['secret']} — receivers "
                    f"use it to verify the {SIGNATURE_HEADER} header. It is not shown again.",
                )
            return redirect("channel-detail", channel_id=channel.pk)
    return _channel_render(
        request, project=project, projects=projects, channel=None, form=form, errors=errors
    )


def channel_edit_page(request, channel_id: int):
    channel = _channel_get(request, channel_id)
    project = channel.project
    _require_admin(request, project, "change channels")
    form, errors = _channel_form(channel, channel.kind), {}
    if request.method == "POST":
        form, errors, saved = _channel_save(
            request, project=project, channel=channel, kind=channel.kind
        )
        if saved is not None:
            messages.success(request, f"Channel “{saved.name}” saved.")
            return redirect("channel-detail", channel_id=saved.pk)
        form["has_secret"] = bool((channel.config or {}).get("secret"))
    projects, _ = project_from_query(user=request.user, slug=project.slug)
    return _channel_render(
        request, project=project, projects=projects, channel=channel, form=form, errors=errors
    )


def _channel_detail(request, channel: Channel, *, test: dict | None = None):
    project = channel.project
    projects, _ = project_from_query(user=request.user, slug=project.slug)
    is_admin = is_project_admin(user=request.user, project=project)
    attempts = (
        DeliveryAttempt.objects.filter(delivery__channel=channel)
        .select_related("delivery")
        .order_by("-started_at")[:RECENT_ATTEMPTS]
    )
    return render(
        request,
        "budgets/setup/channel_detail.html",
        {
            "project": project,
            "nav_projects": projects,
            "channel": channel,
            "destination": channel_destination(channel) if is_admin else "",
            "headers": sorted((channel.config or {}).get("headers", {}) or {}),
            "has_secret": bool((channel.config or {}).get("secret")),
            "is_admin": is_admin,
            "attempts": list(attempts),
            "envelopes": list(channel.envelopes.order_by("name")),
            "test": test,
        },
    )


def channel_detail_page(request, channel_id: int):
    return _channel_detail(request, _channel_get(request, channel_id))


@require_POST
def channel_test_view(request, channel_id: int):
    """Send a test alert through the channel's own transport and show what happened."""
    channel = _channel_get(request, channel_id)
    _require_admin(request, channel.project, "send test alerts")
    try:
        duration_ms = channel_send_test(channel=channel)
    except TransportError as exc:
        test = {"ok": False, "error": exc.message, "permanent": exc.permanent}
    else:
        test = {"ok": True, "duration_ms": round(duration_ms)}
    return _channel_detail(request, channel, test=test)
