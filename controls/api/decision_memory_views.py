"""Decision memory API: search the decisions agents took, read one with similar past
decisions, and record what a person did (shadow phase). Scoped like every endpoint: the
projects the caller can see; a project key sees and writes its own project only."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from controls.decision_memory import (
    PENDING_KEEP,
    DecisionFilters,
    DecisionPending,
    TooManyPending,
    agreement_by_version,
    decision_action_record,
    decision_get,
    decision_list,
    decision_outcome,
    run_outcomes,
    similar_decisions,
)
from controls.models import DecisionRecord
from traces.api.authentication import writable_project_id
from traces.paging import CappedPagination
from traces.selectors import project_get_for_user, project_list_for_user


def decision_json(record: DecisionRecord, outcomes=None) -> dict:
    data = {
        "id": record.pk,
        "trace_id": record.trace_id,
        "span_id": record.span_id,
        "agent": record.agent,
        "agent_version": record.agent_version,
        "prompt_version": record.prompt_version,
        "phase": record.phase,
        "context": record.context,
        "options": record.options,
        "action": record.action,
        "confidence": None if record.confidence is None else float(record.confidence),
        "policies": record.policies,
        "decided_at": record.decided_at,
        "human_action": record.human_action,
        "human_action_at": record.human_action_at,
        "outcome": decision_outcome(record),
    }
    if outcomes is not None:
        data["run_outcomes"] = [
            {"kind": o.kind, "name": o.name, "value": o.value} for o in outcomes
        ]
    return data


def _project(request):
    slug = str(request.query_params.get("project", "")).strip()
    if not slug:
        raise exceptions.ValidationError({"project": ["Give the project's slug."]})
    return project_get_for_user(user=request.user, slug=slug)


LIST_PARAMS = [
    OpenApiParameter("project", str, required=True, description="Project slug"),
    OpenApiParameter("q", str, description="Words searched in context and action"),
    OpenApiParameter("agent", str),
    OpenApiParameter("version", str, description="Agent version"),
    OpenApiParameter("action", str, description="The chosen action, exactly"),
    OpenApiParameter("outcome", str, enum=["agreed", "overridden", "pending"]),
]


class DecisionListView(APIView):
    """A project's decisions (most relevant first with `q`, else newest), paginated, and
    the agreement between the agent's recommendation and the person's action per agent
    version, with its Wilson 95 % interval."""

    @extend_schema(
        operation_id="decisions_list", parameters=LIST_PARAMS, responses=OpenApiTypes.OBJECT
    )
    def get(self, request):
        project = _project(request)
        try:
            filters = DecisionFilters.from_query(request.query_params)
        except ValueError as exc:
            raise exceptions.ValidationError({"outcome": [str(exc)]}) from exc
        paginator = CappedPagination()
        page = paginator.paginate_queryset(
            decision_list(project_id=project.pk, filters=filters), request, view=self
        )
        response = paginator.get_paginated_response([decision_json(r) for r in page])
        response.data["agreement"] = agreement_by_version(
            project_id=project.pk, agent=filters.agent
        )
        return response


class DecisionDetailView(APIView):
    """One decision, its run's outcomes, and similar past decisions of the same agent with
    theirs."""

    @extend_schema(operation_id="decisions_detail", responses=OpenApiTypes.OBJECT)
    def get(self, request, pk: int):
        projects = project_list_for_user(user=request.user).values("pk")
        record = decision_get(project_ids=projects, pk=pk)
        if record is None:
            raise exceptions.NotFound("No such decision.")
        similar = similar_decisions(record)
        outcomes = run_outcomes([record, *similar])
        data = decision_json(record, outcomes.get(record.trace_id, []))
        data["similar"] = [decision_json(s, outcomes.get(s.trace_id, [])) for s in similar]
        return Response(data)


class DecisionActionSerializer(serializers.Serializer):
    project = serializers.SlugField(required=False, help_text="Not needed with a project key")
    trace_id = serializers.RegexField(
        r"^[0-9a-fA-F]{32}$", error_messages={"invalid": "A trace id is 32 hex characters."}
    )
    span_id = serializers.RegexField(
        r"^[0-9a-fA-F]{16}$",
        required=False,
        allow_blank=True,
        default="",
        error_messages={"invalid": "A span id is 16 hex characters."},
    )
    action = serializers.CharField(max_length=500, help_text="What the person did")
    acted_at = serializers.DateTimeField(required=False, allow_null=True, default=None)


class DecisionActionView(APIView):
    """The person's actual action on a decision (shadow phase: the agent recommends, a
    person acts), by trace id and, when the run took several decisions, span id (else
    its latest). Posting again replaces it. Project keys and project admins write. An action
    that arrives before its decision is kept and joined when the decision is recorded: a
    202 with `status: pending`."""

    @extend_schema(
        operation_id="decisions_action",
        request=DecisionActionSerializer,
        responses=OpenApiTypes.OBJECT,
    )
    def post(self, request):
        body = DecisionActionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        project_id = self._project_id(request, data.get("project"))
        try:
            record = decision_action_record(
                project_id=project_id,
                trace_id=data["trace_id"],
                span_id=data["span_id"],
                action=data["action"],
                acted_at=data["acted_at"],
            )
        except DecisionPending as kept:
            pending = kept.pending
            return Response(
                {
                    "status": "pending",
                    "trace_id": pending.trace_id,
                    "span_id": pending.span_id,
                    "action": pending.action,
                    "detail": "No decision on that run yet: the action is kept and joined "
                    f"when the decision arrives (for up to {PENDING_KEEP.days} days).",
                },
                status=202,
            )
        except TooManyPending as full:
            raise exceptions.Throttled(detail=f"{full}; try again later.", wait=60) from None
        return Response(decision_json(record))

    def _project_id(self, request, slug: str | None) -> int:
        return writable_project_id(request, slug, what="actions")
