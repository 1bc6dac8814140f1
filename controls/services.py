"""Tool contracts: validation, the changes between two versions, and the idempotent write.

`contract_clean()` takes a contract's fields as plain values, returns them normalised
and raises a django ValidationError keyed by field. `contract_changes()` compares two
contracts (plain dicts of the same fields) and says which changes break callers.
`contract_plan()` says what writing a contract would do; `contract_upsert()` does it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from controls.models import ToolContract
from controls.selectors import contract_latest
from traces.models import Project

FIELDS = (
    "name",
    "version",
    "arguments_schema",
    "result_schema",
    "side_effects",
    "requires_idempotency_key",
    "risk",
    "status",
    "description",
)
DEFAULTS: dict[str, Any] = {
    "arguments_schema": {},
    "result_schema": {},
    "side_effects": False,
    "requires_idempotency_key": False,
    "risk": ToolContract.Risk.LOW.value,
    "status": ToolContract.Status.ACTIVE.value,
    "description": "",
}
SCHEMA_FIELDS = ("arguments_schema", "result_schema")


def json_pointer(path) -> str:
    """RFC 6901 pointer of a path of keys and indexes ("" is the whole document)."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def contract_clean(data: Mapping[str, Any]) -> dict[str, Any]:
    """The contract's fields with defaults filled in; raises ValidationError({field: [..]}).

    Schemas must be JSON objects and valid Draft 2020-12 schemas; the message of an
    invalid one names the JSON pointer, inside that schema, of what is wrong."""
    errors: dict[str, list[str]] = {}
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        errors["__all__"] = [f"Unknown field(s): {', '.join(unknown)}."]
    out = {**DEFAULTS, **{k: v for k, v in data.items() if k in FIELDS}}
    for name, limit in (("name", 200), ("version", 64)):
        value = out.get(name)
        if not isinstance(value, str) or not value.strip():
            # YAML reads `version: 1.10` as the number 1.1: refuse rather than guess.
            errors[name] = ["Required, as a non-empty string (quote versions in YAML)."]
        elif len(value) > limit:
            errors[name] = [f"At most {limit} characters."]
        else:
            out[name] = value.strip()
    for name in SCHEMA_FIELDS:
        schema = out[name]
        if not isinstance(schema, dict):
            errors[name] = ["Must be a JSON Schema object ({} accepts anything)."]
            continue
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            errors[name] = [
                f"Invalid JSON Schema at {json_pointer(exc.path) or '/'}: {exc.message}"
            ]
    for name in ("side_effects", "requires_idempotency_key"):
        if not isinstance(out[name], bool):
            errors[name] = ["Must be true or false."]
    for name, choices in (("risk", ToolContract.Risk), ("status", ToolContract.Status)):
        if out[name] not in choices.values:
            errors[name] = [f"Must be one of {', '.join(choices.values)}."]
    if not isinstance(out["description"], str):
        errors["description"] = ["Must be a string."]
    if errors:
        raise ValidationError(errors)
    return out


def contract_as_dict(contract: ToolContract) -> dict[str, Any]:
    return {name: getattr(contract, name) for name in FIELDS}


# ------------------------------------------------------------------ changes


@dataclass(frozen=True)
class Change:
    part: str  # "arguments", "result" or "contract"
    pointer: str  # JSON pointer inside the new schema ("" for the contract's own fields)
    message: str
    breaking: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _types(schema: Any) -> set[str] | None:
    """The JSON types a schema allows; None when it does not say (any type)."""
    if not isinstance(schema, dict) or "type" not in schema:
        return None
    t = schema["type"]
    return {t} if isinstance(t, str) else set(t)


def _covers(wide: set[str] | None, narrow: set[str] | None) -> bool:
    if wide is None:
        return True
    if narrow is None:
        return False
    return all(t in wide or (t == "integer" and "number" in wide) for t in narrow)


def _fmt_types(types: set[str] | None) -> str:
    return "any" if types is None else "/".join(sorted(types))


def _canonical(values: list) -> dict[str, Any]:
    return {json.dumps(v, sort_keys=True): v for v in values}


def _schema_changes(old: Any, new: Any, *, part: str, pointer: str, out: list[Change]) -> None:
    # Callers send arguments (a narrower schema can reject what they send) and read
    # results (a wider one can hand them what they do not expect).
    args = part == "arguments"
    if not isinstance(old, dict) or not isinstance(new, dict):
        return
    where = pointer or "the top level"

    ot, nt = _types(old), _types(new)
    if ot != nt:
        narrowed, widened = not _covers(nt, ot), not _covers(ot, nt)
        verb = "changed" if narrowed and widened else "narrowed" if narrowed else "widened"
        out.append(
            Change(
                part,
                pointer,
                f"type {verb} from {_fmt_types(ot)} to {_fmt_types(nt)} at {where}",
                breaking=(narrowed and args) or (widened and not args),
            )
        )

    oe, ne = old.get("enum"), new.get("enum")
    if isinstance(oe, list) or isinstance(ne, list):
        if not isinstance(ne, list):
            out.append(Change(part, pointer, f"enum dropped at {where}", breaking=not args))
        elif not isinstance(oe, list):
            out.append(Change(part, pointer, f"enum added at {where}", breaking=args))
        else:
            o, n = _canonical(oe), _canonical(ne)
            removed = [o[k] for k in o if k not in n]
            added = [n[k] for k in n if k not in o]
            if removed:
                out.append(
                    Change(part, pointer, f"enum values removed at {where}: {removed}", args)
                )
            if added:
                out.append(
                    Change(part, pointer, f"enum values added at {where}: {added}", not args)
                )

    if old.get("description") != new.get("description"):
        out.append(Change(part, pointer, f"description changed at {where}", breaking=False))

    op, np_ = old.get("properties") or {}, new.get("properties") or {}
    oreq, nreq = set(old.get("required") or []), set(new.get("required") or [])
    noun = "argument" if args else "result property"
    for name in op:
        if name not in np_:
            out.append(
                Change(part, f"{pointer}/properties/{name}", f"{noun} {name!r} removed", True)
            )
    for name in np_:
        p = f"{pointer}/properties/{name}"
        if name not in op:
            required = name in nreq
            kind = "required" if required else "optional"
            out.append(Change(part, p, f"new {kind} {noun} {name!r}", breaking=args and required))
        else:
            _schema_changes(op[name], np_[name], part=part, pointer=p, out=out)
    for name in sorted(nreq - oreq):
        if name in op or name not in np_:
            out.append(Change(part, f"{pointer}/required", f"{noun} {name!r} now required", args))
    for name in sorted(oreq - nreq):
        if name in np_:
            out.append(
                Change(part, f"{pointer}/required", f"{noun} {name!r} now optional", not args)
            )

    if isinstance(old.get("items"), dict) and isinstance(new.get("items"), dict):
        _schema_changes(old["items"], new["items"], part=part, pointer=f"{pointer}/items", out=out)


def contract_changes(*, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    """What changed from `old` to `new` (cleaned contract fields), each change marked
    breaking when a caller written against `old` can fail against `new`: a newly
    required argument, a removed argument or result property, an argument type or enum
    narrowed, a result type or enum widened, an idempotency key newly required."""
    out: list[Change] = []
    _schema_changes(
        old.get("arguments_schema"), new.get("arguments_schema"),
        part="arguments", pointer="", out=out,
    )  # fmt: skip
    _schema_changes(
        old.get("result_schema"), new.get("result_schema"), part="result", pointer="", out=out
    )
    for name in ("side_effects", "requires_idempotency_key", "risk", "status", "description"):
        if old.get(name) != new.get(name):
            out.append(
                Change(
                    "contract",
                    "",
                    f"{name} changed from {old.get(name)!r} to {new.get(name)!r}",
                    breaking=name == "requires_idempotency_key" and bool(new.get(name)),
                )
            )
    return out


# ------------------------------------------------------------------ writes


@dataclass
class ContractPlan:
    """What writing a contract does: `new` (first version of the name), `new_version`
    (changes against `against`, the latest version), `changed` (this version's fields
    differ from what is stored) or `unchanged`."""

    action: str
    name: str
    version: str
    against: str | None = None
    changes: list[Change] = field(default_factory=list)

    @property
    def breaking(self) -> bool:
        return any(c.breaking for c in self.changes)


def contract_plan(
    *, project: Project, data: Mapping[str, Any], latest: Mapping[str, Any] | None = None
) -> ContractPlan:
    """The plan for writing cleaned `data`. `latest` stands in for the stored latest
    version of the name (when planning several versions of one name in a row)."""
    name, version = data["name"], data["version"]
    existing = ToolContract.objects.filter(project=project, name=name, version=version).first()
    if existing is not None:
        stored = contract_as_dict(existing)
        changes = contract_changes(old=stored, new=data)
        action = "changed" if changes else "unchanged"
        return ContractPlan(action, name, version, against=version, changes=changes)
    if latest is None:
        row = contract_latest(project=project, name=name)
        latest = contract_as_dict(row) if row else None
    if latest is None:
        return ContractPlan("new", name, version)
    changes = contract_changes(old=latest, new=data)
    return ContractPlan("new_version", name, version, against=latest["version"], changes=changes)


@dataclass
class UpsertResult:
    contract: ToolContract
    plan: ContractPlan


def contract_upsert(*, project: Project, data: Mapping[str, Any]) -> UpsertResult:
    """Create or update the contract (project, name, version) from `data`, validated by
    `contract_clean`. Idempotent: writing the same fields again changes nothing."""
    data = contract_clean(data)
    with transaction.atomic():
        plan = contract_plan(project=project, data=data)
        fields = {k: v for k, v in data.items() if k not in ("name", "version")}
        if plan.action == "unchanged":
            contract = ToolContract.objects.get(
                project=project, name=data["name"], version=data["version"]
            )
        else:
            contract, _ = ToolContract.objects.update_or_create(
                project=project, name=data["name"], version=data["version"], defaults=fields
            )
    return UpsertResult(contract=contract, plan=plan)
