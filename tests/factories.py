"""Test data builders. Spans are built as decoded OTLP spans and go through the real
ingest service, so summaries are computed exactly as in production."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import factory
from django.contrib.auth import get_user_model

from traces.ingest import span_batch_ingest
from traces.models import Membership, Project
from traces.otlp import RawSpan


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.test")
    password = factory.django.Password("pw-for-tests-1")


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    slug = factory.Sequence(lambda n: f"project-{n}")
    name = factory.LazyAttribute(lambda p: p.slug.replace("-", " ").title())


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    project = factory.SubFactory(ProjectFactory)
    user = factory.SubFactory(UserFactory)
    role = Membership.Role.VIEWER


def new_trace_id() -> str:
    return secrets.token_hex(16)


def new_span_id() -> str:
    return secrets.token_hex(8)


def ns(dt: datetime) -> int:
    return int(dt.timestamp()) * 10**9 + dt.microsecond * 1000


def raw_span(
    *,
    trace_id: str,
    span_id: str | None = None,
    parent_span_id: str = "",
    name: str = "span",
    start: datetime | None = None,
    duration_ms: float = 100.0,
    attributes: dict | None = None,
    events: list | None = None,
    status_code: int = 0,
    status_message: str = "",
    resource: dict | None = None,
    kind: int = 1,
) -> RawSpan:
    start = start or datetime.now(UTC)
    start_ns = ns(start)
    return RawSpan(
        trace_id=trace_id,
        span_id=span_id or new_span_id(),
        parent_span_id=parent_span_id,
        name=name,
        kind=kind,
        start_ns=start_ns,
        end_ns=start_ns + int(duration_ms * 1e6),
        attributes=attributes or {},
        events=events or [],
        links=[],
        status_code=status_code,
        status_message=status_message,
        resource=resource or {"service.name": "test-service"},
        scope={"name": "tests", "version": "1"},
    )


def llm_attrs(
    model: str = "gpt-4o-mini", input_tokens: int = 100, output_tokens: int = 20, **extra
) -> dict:
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": model,
        "gen_ai.response.model": model,
        "gen_ai.usage.input_tokens": input_tokens,
        "gen_ai.usage.output_tokens": output_tokens,
        **extra,
    }


def agent_run(
    *,
    project: Project,
    agent: str = "support-agent",
    start: datetime | None = None,
    tools: int = 1,
    error: bool = False,
    session_id: str = "",
    model: str = "gpt-4o-mini",
    store: bool = True,
) -> tuple[str, list[RawSpan]]:
    """One agent run: root → plan LLM call → tool call(s) → final LLM call.

    Ingested through the real service unless store=False."""
    start = start or datetime.now(UTC)
    trace_id = new_trace_id()
    root_id = new_span_id()
    spans = []
    offset = 0
    session = {"gen_ai.conversation.id": session_id} if session_id else {}

    def at(ms: float) -> datetime:
        return datetime.fromtimestamp(start.timestamp() + ms / 1000, tz=UTC)

    spans.append(
        raw_span(
            trace_id=trace_id,
            parent_span_id=root_id,
            name=f"chat {model}",
            start=at(10),
            duration_ms=400,
            attributes=llm_attrs(model, **session),
            kind=3,
        )
    )
    offset = 420
    for i in range(tools):
        spans.append(
            raw_span(
                trace_id=trace_id,
                parent_span_id=root_id,
                name="execute_tool lookup_order",
                start=at(offset),
                duration_ms=50,
                attributes={
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": "lookup_order",
                    "gen_ai.tool.call.id": f"call_{i}",
                    "gen_ai.tool.call.arguments": '{"order_id": 42}',
                    "gen_ai.tool.call.result": '{"status": "shipped"}',
                },
            )
        )
        offset += 60
    spans.append(
        raw_span(
            trace_id=trace_id,
            parent_span_id=root_id,
            name=f"chat {model}",
            start=at(offset),
            duration_ms=300,
            attributes=llm_attrs(model, input_tokens=150, output_tokens=40),
            kind=3,
            status_code=2 if error else 0,
        )
    )
    offset += 310
    spans.append(
        raw_span(
            trace_id=trace_id,
            span_id=root_id,
            name=f"invoke_agent {agent}",
            start=start,
            duration_ms=offset,
            attributes={
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": agent,
                **session,
            },
            status_code=2 if error else 1,
        )
    )
    if store:
        span_batch_ingest(project_id=project.pk, spans=spans)
    return trace_id, spans
