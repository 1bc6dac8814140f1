"""Runtime policy gates: a project's Cedar policies, versioned, and the decision they give.

The Cedar request of one check:

* principal ``Agent::"<agent>"`` with ``version`` (as the agent sends it) and ``phase``
  (the phase the console declares for the agent, never the one in the request; "" when
  none is declared);
* action ``Action::"call_tool"``;
* resource ``Tool::"<tool>"`` with ``risk`` and ``side_effects`` from the tool's latest
  contract, and ``contracted``; a tool with no contract reads as risk "unknown" with side
  effects;
* context ``{arguments, amount, risk, confidence, hour}``. Cedar has no floats, so
  ``amount`` is in cents (a Long: 12.34 → 1234) and ``confidence`` in thousandths
  (0.85 → 850); ``hour`` is the UTC hour. ``arguments`` is a record whose fields the
  schema cannot know: read one behind a ``has`` test (``context.arguments has order_id &&
  context.arguments.order_id == "…"``).

Decisions: allow when a ``permit`` matches and no ``forbid`` does; escalate when every
matching ``forbid`` is annotated ``@escalate("<reason>")``; deny otherwise. With no
active policy version the answer is deny, reason "no policy" (fail closed). An agent the
console declares paused is denied, reason "agent paused", whatever the policies say
(they are not evaluated).

A draft text, or any version, can be tried on a sample request (`policy_try`): the same
decision, recorded nowhere.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import cedarpy
import orjson
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Max, Subquery

from controls.models import PolicyDecision, PolicyVersion, ToolContract
from rollouts.selectors import declared_phase, declared_phase_query
from traces.models import Phase, Project

SCHEMA = """
entity Agent = { version: String, phase: String };
entity Tool = { risk: String, side_effects: Bool, contracted: Bool };
action call_tool appliesTo {
  principal: [Agent],
  resource: [Tool],
  context: {
    arguments: {},
    amount: Long,
    risk: String,
    confidence: Long,
    hour: Long,
  },
};
"""
_SCHEMA = cedarpy.Schema.from_str(SCHEMA)
MAX_TEXT = 200_000
NO_POLICY = "no policy"
PAUSED = "agent paused"
UNKNOWN_RISK = "unknown"
MAX_NUMBER = 2**31 - 1  # PositiveIntegerField: a larger number names no version


@dataclass(frozen=True)
class CompiledPolicies:
    """A version's parsed PolicySet and, per Cedar policy id, its annotations."""

    policies: Any
    annotations: dict[str, dict[str, str]]


@dataclass
class PolicyAnswer:
    decision: str
    policy_ids: list[str]
    policy_version: int | None
    reason: str
    decision_id: str
    phase: str = ""
    errors: list[str] = field(default_factory=list)


def policy_text_clean(text: Any) -> str:
    """The text if it parses and validates against the schema; else ValidationError({"text"})."""
    if not isinstance(text, str) or not text.strip():
        raise ValidationError({"text": ["Required: the Cedar policies, as text."]})
    if len(text) > MAX_TEXT:
        raise ValidationError({"text": [f"At most {MAX_TEXT} characters."]})
    if "\x00" in text:  # Cedar would take it in a comment; PostgreSQL text cannot hold it
        raise ValidationError({"text": ["Must not contain NUL characters."]})
    result = cedarpy.validate_policies(text, _SCHEMA)
    if not result.validation_passed:
        raise ValidationError({"text": [e.error for e in result.errors] or ["Invalid policies."]})
    return text


def policy_version_create(*, project: Project, text: Any, created_by: str = "") -> PolicyVersion:
    """Validate and save the text as the project's next version, which becomes the active one."""
    text = policy_text_clean(text)
    with transaction.atomic():
        # Serialises concurrent saves of one project (a no-op on SQLite, which has one writer).
        Project.objects.select_for_update().filter(pk=project.pk).first()
        last = PolicyVersion.objects.filter(project=project).aggregate(n=Max("number"))["n"]
        PolicyVersion.objects.filter(project=project, active=True).update(active=False)
        return PolicyVersion.objects.create(
            project=project,
            number=(last or 0) + 1,
            text=text,
            created_by=created_by[:150],
            active=True,
        )


def policy_version_restore(*, project: Project, number: int, created_by: str = "") -> PolicyVersion:
    """Save an old version's text as the project's next version (the history stays linear:
    nothing is re-activated in place). DoesNotExist for no such version; ValidationError
    when it is the active one, or no longer validates against the schema."""
    old = policy_version_get(project=project, number=number)
    if old.active:
        raise ValidationError({"number": [f"Version {number} is the active one."]})
    return policy_version_create(project=project, text=old.text, created_by=created_by)


def policy_version_list(*, project: Project):
    """The project's versions, newest first."""
    return PolicyVersion.objects.filter(project=project).order_by("-number")


def policy_version_get(*, project: Project, number: int) -> PolicyVersion:
    """One version of the project's policies; DoesNotExist when there is no such number."""
    if not 0 < number <= MAX_NUMBER:
        raise PolicyVersion.DoesNotExist
    return PolicyVersion.objects.get(project=project, number=number)


# Parsed policy sets by version. A version's text never changes, so an entry is never
# stale; activating another version changes the key the check looks up. The key carries
# the creation time as well as the id because SQLite may reuse the id of a deleted row.
_VersionKey = tuple[int, datetime]
_compiled: dict[_VersionKey, CompiledPolicies] = {}
_compiled_lock = threading.Lock()
_COMPILED_MAX = 512


def _compile(text: str) -> CompiledPolicies:
    parsed = orjson.loads(cedarpy.policies_to_json_str(text))
    annotations = {
        pid: dict(p.get("annotations") or {})
        for pid, p in (parsed.get("staticPolicies") or {}).items()
    }
    return CompiledPolicies(policies=cedarpy.PolicySet.from_str(text), annotations=annotations)


def _compiled_for(key: _VersionKey) -> CompiledPolicies:
    hit = _compiled.get(key)
    if hit is not None:
        return hit
    text = PolicyVersion.objects.values_list("text", flat=True).get(pk=key[0])
    compiled = _compile(text)
    with _compiled_lock:
        if len(_compiled) >= _COMPILED_MAX:
            _compiled.clear()
        _compiled[key] = compiled
    return compiled


_LONG = 2**63


def cedar_value(value: Any) -> Any:
    """A JSON value as Cedar takes it: Cedar has no floats and no nulls, and its Longs are
    64-bit, so a float or an out-of-range integer becomes its decimal string and a null
    field is left out (`has` is false for it)."""
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value if -_LONG <= value < _LONG else str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return {str(k): cedar_value(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [cedar_value(v) for v in value if v is not None]
    return str(value)


def cents(amount: Decimal) -> int:
    return int(amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP) * 100)


def thousandths(confidence: Decimal) -> int:
    return int((confidence * 1000).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def policy_evaluate(
    *,
    compiled: CompiledPolicies,
    agent: str,
    agent_version: str,
    phase: str,
    tool: str,
    contract: dict[str, Any] | None,
    arguments: dict[str, Any],
    amount: Decimal,
    risk: str,
    confidence: Decimal,
    now: datetime,
) -> tuple[str, list[str], str]:
    """(decision, policy ids, reason) of Cedar's answer to one request. Pure: no database."""
    entities = [
        {
            "uid": {"type": "Agent", "id": agent},
            "attrs": {"version": agent_version, "phase": phase},
            "parents": [],
        },
        {
            "uid": {"type": "Tool", "id": tool},
            "attrs": {
                "risk": contract["risk"] if contract else UNKNOWN_RISK,
                "side_effects": contract["side_effects"] if contract else True,
                "contracted": contract is not None,
            },
            "parents": [],
        },
    ]
    request = {
        "principal": {"type": "Agent", "id": agent},
        "action": {"type": "Action", "id": "call_tool"},
        "resource": {"type": "Tool", "id": tool},
        "context": {
            "arguments": cedar_value(arguments),
            "amount": cents(amount),
            "risk": risk,
            "confidence": thousandths(confidence),
            "hour": now.astimezone(UTC).hour,
        },
    }
    result = cedarpy.is_authorized(request, compiled.policies, entities)
    # Cedar returns the matching policies as a set; policy0, policy1, … is their text order.
    matched = sorted(result.diagnostics.reasons, key=lambda pid: (len(pid), pid))
    notes = [compiled.annotations.get(pid, {}) for pid in matched]
    ids = [n.get("id", pid) for pid, n in zip(matched, notes, strict=True)]
    if result.allowed:
        return PolicyDecision.Decision.ALLOW, ids, f"permitted by {', '.join(ids)}"
    if not matched:
        errors = "; ".join(str(e) for e in result.diagnostics.errors)
        reason = "no policy permits this" + (f" (policy errors: {errors})" if errors else "")
        return PolicyDecision.Decision.DENY, ids, reason[:500]
    # A plain forbid is stronger than an escalation: escalate only when every forbid
    # that matched asks for it.
    if all("escalate" in n for n in notes):
        reasons = list(dict.fromkeys(n["escalate"] for n in notes))
        return PolicyDecision.Decision.ESCALATE, ids, "; ".join(reasons)[:500]
    return PolicyDecision.Decision.DENY, ids, f"forbidden by {', '.join(ids)}"[:500]


def _decide(
    *, compiled: CompiledPolicies | None, phase: str, **request
) -> tuple[str, list[str], str]:
    """The decision of one request: paused first, then no policy, then Cedar's answer."""
    if phase == Phase.PAUSED:
        return PolicyDecision.Decision.DENY, [], PAUSED
    if compiled is None:
        return PolicyDecision.Decision.DENY, [], NO_POLICY
    return policy_evaluate(compiled=compiled, phase=phase, **request)


_READ_FIELDS = ("version_id", "version_at", "number", "phase", "risk", "side_effects")


def _read_query(*, project_id: int, agent: str, tool: str, at: datetime):
    version = PolicyVersion.objects.filter(project_id=project_id, active=True)
    contract_q = ToolContract.objects.filter(project_id=project_id, name=tool).order_by(
        "-created_at", "-id"
    )
    return Project.objects.filter(pk=project_id).values_list(
        Subquery(version.values("id")[:1]),
        Subquery(version.values("created_at")[:1]),
        Subquery(version.values("number")[:1]),
        Subquery(declared_phase_query(project_id=project_id, agent=agent, at=at)),
        Subquery(contract_q.values("risk")[:1]),
        Subquery(contract_q.values("side_effects")[:1]),
    )


# Compiling that query (five subqueries) cost about 1.8 ms, more than the rest of a check:
# it is compiled once per process with sentinel values, which are then swapped for each
# call's own (the parameters come out in the same order whatever their values).
_SENTINELS = {
    "project_id": -7_301_998_245,
    "agent": "\x01agent\x01",
    "tool": "\x01tool\x01",
    "at": datetime(1901, 2, 3, 4, 5, 6, 789, tzinfo=UTC),
}
_compiled_read: dict[str, tuple[str, list[str]]] = {}


def _read_row(*, project_id: int, agent: str, tool: str, at: datetime) -> dict[str, Any]:
    key = connection.vendor
    if key not in _compiled_read:
        sql, params = _read_query(**_SENTINELS).query.sql_with_params()
        by_value = {repr(v): name for name, v in _SENTINELS.items()}
        # Some backends hand the datetime over already adapted (SQLite: as text).
        by_value[repr(connection.ops.adapt_datetimefield_value(_SENTINELS["at"]))] = "at*"
        _compiled_read[key] = (sql, [by_value[repr(p)] for p in params])
    sql, names = _compiled_read[key]
    values = {
        "project_id": project_id,
        "agent": agent,
        "tool": tool,
        "at": at,
        "at*": connection.ops.adapt_datetimefield_value(at),
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, [values[n] for n in names])
        found = cursor.fetchone()
    if found is None:
        return dict.fromkeys(_READ_FIELDS)
    row = dict(zip(_READ_FIELDS, found, strict=True))
    if isinstance(row["version_at"], str):  # SQLite returns text for a subquery datetime
        row["version_at"] = datetime.fromisoformat(row["version_at"])
    return row


def policy_check(
    *,
    project_id: int,
    agent: str,
    tool: str,
    agent_version: str = "",
    phase: str = "",
    arguments: dict[str, Any] | None = None,
    amount: Decimal = Decimal(0),
    risk: str = "",
    confidence: Decimal = Decimal(0),
    now: datetime | None = None,
) -> PolicyAnswer:
    """Decide one tool call with the project's active policies and record the decision.

    `phase` is what the agent claims; it is recorded, never used. Two queries: one read
    (the active version, the declared phase, the tool's contract) and the audit insert;
    plus the version's text the first time this process sees that version."""
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    # The active version, the declared phase and the tool's contract in one round trip.
    row = _read_row(project_id=project_id, agent=agent, tool=tool, at=now)
    declared, number = row["phase"] or "", row["number"]
    compiled = None
    # A paused agent is denied without compiling or evaluating anything.
    if row["version_id"] is not None and declared != Phase.PAUSED:
        compiled = _compiled_for((row["version_id"], row["version_at"]))
    contract = None
    if row["risk"] is not None:
        contract = {"risk": row["risk"], "side_effects": row["side_effects"]}
    decision, ids, reason = _decide(
        compiled=compiled,
        agent=agent,
        agent_version=agent_version,
        phase=declared,
        tool=tool,
        contract=contract,
        arguments=arguments or {},
        amount=amount,
        risk=risk,
        confidence=confidence,
        now=now,
    )
    latency_us = int((time.perf_counter() - started) * 1_000_000)
    # No savepoint: inside a caller's transaction the setting applies to all of it.
    with transaction.atomic(savepoint=False):
        if connection.vendor == "postgresql":
            # The audit row does not wait for its WAL flush (the check's p99 was the fsync):
            # a server crash may lose the last fraction of a second of decision rows, never
            # corrupt them.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        row = PolicyDecision.objects.create(
            public_id=uuid.uuid4(),
            project_id=project_id,
            agent=agent,
            agent_version=agent_version,
            phase=declared,
            claimed_phase=phase[:16],
            tool=tool,
            decision=decision,
            policy_ids=ids,
            policy_version=number,
            reason=reason,
            latency_us=latency_us,
        )
    return PolicyAnswer(
        decision=str(decision),
        policy_ids=ids,
        policy_version=number,
        reason=reason,
        decision_id=str(row.public_id),
        phase=declared,
    )


@dataclass
class PolicyTry:
    """What a text (a draft, or the active version) decides for a sample request."""

    decision: str
    policy_ids: list[str]
    reason: str
    phase: str
    policy_version: int | None  # the active version tried; None for a draft text


def policy_try(
    *,
    project: Project,
    agent: str,
    tool: str,
    text: str | None = None,
    agent_version: str = "",
    phase: str = "",
    arguments: dict[str, Any] | None = None,
    amount: Decimal = Decimal(0),
    risk: str = "",
    confidence: Decimal = Decimal(0),
    now: datetime | None = None,
) -> PolicyTry:
    """The decision `text` (validated first; else the active version) gives one request, as
    the check would give it, recorded nowhere. `phase` is the one to try it in; blank, the
    agent's declared phase. ValidationError({"text"}) for a text that does not validate."""
    now = now or datetime.now(UTC)
    number = None
    if text is not None and text.strip():
        compiled: CompiledPolicies | None = _compile(policy_text_clean(text))
    else:
        active = PolicyVersion.objects.filter(project=project, active=True).first()
        number = active.number if active else None
        compiled = _compiled_for((active.pk, active.created_at)) if active else None
    phase = phase or declared_phase(project_id=project.pk, agent=agent, at=now)
    contract = (
        ToolContract.objects.filter(project=project, name=tool)
        .order_by("-created_at", "-id")
        .values("risk", "side_effects")
        .first()
    )
    decision, ids, reason = _decide(
        compiled=compiled,
        agent=agent,
        agent_version=agent_version,
        phase=phase,
        tool=tool,
        contract=contract,
        arguments=arguments or {},
        amount=amount,
        risk=risk,
        confidence=confidence,
        now=now,
    )
    return PolicyTry(
        decision=str(decision),
        policy_ids=ids,
        reason=reason,
        phase=phase,
        policy_version=number,
    )
