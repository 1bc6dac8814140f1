"""Span attributes of every convention → one neutral record.

    map_span(raw: RawSpan) -> Neutral
        Pure function, no database, on the ingest hot path. docs/semconv-mapping.md is
        the one description of what it reads, in which order; change both together.

One module per convention family, listed in CONVENTIONS. A family module declares data,
and may define hooks; the mapping (mapping.py) assembles them once, at import:

    CLASSIFY = {attribute: (rank, {value: step kind})}   the kind tables, lowest rank first;
        tables of several families for the same attribute are merged
    KEYS = {field: ((rank, attribute), ...)}   attribute names per neutral field; for each
        field, the names of all families sorted by rank, first usable wins
    ERROR_WHEN = {attribute: value}   marks a span failed
    TOOL_IO_FIRST = (marker, argument names, result names)   on spans carrying the marker
        these come first and are kept as sent
    agent_name(attributes, span_name) -> str | None   on agent spans without an agent
        name; the first family that answers (not None) decides
    tool_name(attributes, span_name) -> str   on tool spans without a tool name; first
        non-empty wins
    provider(attributes) -> str   when no provider name was found
    reported_cost(attributes, tokens, neutral) -> Decimal | None   tried before KEYS["cost"]
    apply(attributes, neutral)   last, may override anything

Ranks are one scale per field across families, so a family's names can sit between
another's (a response model before any request model). Adding a convention is adding a
module here, its place in CONVENTIONS, a recorded fixture and its rows in the doc.
"""

from __future__ import annotations

from traces.conventions import (
    agentops,
    langfuse,
    logfire,
    openinference,
    openlit,
    openllmetry,
    otel_genai,
    vercel_ai,
)

# The order hooks are tried in (ranks order the attribute names). Traceloop's entity
# name comes before OpenInference's graph node name; our own namespace is applied last.
CONVENTIONS = (
    otel_genai,
    openllmetry,
    openinference,
    langfuse,
    openlit,
    logfire,
    vercel_ai,
    agentops,
)

from traces.conventions.mapping import map_span  # noqa: E402 (it assembles CONVENTIONS)
from traces.conventions.values import MAX_COST, MAX_TOKENS, Neutral  # noqa: E402

__all__ = ["CONVENTIONS", "MAX_COST", "MAX_TOKENS", "Neutral", "map_span"]
