"""`manage.py contracts apply` against real files."""

from __future__ import annotations

import json
from io import StringIO

import pytest
import yaml
from django.core.management import call_command, execute_from_command_line
from django.core.management.base import CommandError

from controls.models import ToolContract

REFUND_V1 = {
    "name": "refund_order",
    "version": "1.0.0",
    "side_effects": True,
    "requires_idempotency_key": True,
    "risk": "high",
    "arguments_schema": {
        "type": "object",
        "properties": {"order_id": {"type": "string"}, "amount": {"type": "number"}},
        "required": ["order_id"],
    },
    "result_schema": {"type": "object", "properties": {"refund_id": {"type": "string"}}},
}
LOOKUP = {"name": "lookup_order", "version": "2.0.0", "description": "Reads an order"}


def write_yaml(tmp_path, contracts, **top):
    path = tmp_path / "contracts.yaml"
    path.write_text(yaml.safe_dump({**top, "contracts": contracts}))
    return path


def apply(path, *args):
    out = StringIO()
    call_command("contracts", "apply", str(path), *args, stdout=out)
    return out.getvalue()


def test_it_creates_the_contracts_and_applying_again_changes_nothing(project, tmp_path):
    path = write_yaml(tmp_path, [REFUND_V1, LOOKUP], project=project.slug)
    assert "Applied: 2 new, 0 changed, 0 unchanged." in apply(path)
    first = list(ToolContract.objects.values())
    again = apply(path)
    assert "Nothing to change (0 new, 0 changed, 2 unchanged)." in again
    assert list(ToolContract.objects.values()) == first
    refund = ToolContract.objects.get(name="refund_order")
    assert (refund.risk, refund.requires_idempotency_key) == ("high", True)


def test_it_reads_json_and_takes_the_project_from_the_option(project, tmp_path):
    path = tmp_path / "contracts.json"
    path.write_text(json.dumps([LOOKUP]))
    apply(path, "--project", project.slug)
    assert ToolContract.objects.get().project == project


def test_dry_run_prints_breaking_changes_of_a_new_version_and_writes_nothing(project, tmp_path):
    apply(write_yaml(tmp_path, [REFUND_V1, LOOKUP]), "--project", project.slug)
    v2 = {
        **REFUND_V1,
        "version": "1.1.0",
        "arguments_schema": {
            **REFUND_V1["arguments_schema"],
            "required": ["order_id", "amount"],
        },
    }
    out = apply(write_yaml(tmp_path, [v2, LOOKUP]), "--project", project.slug, "--dry-run")
    assert "acme-support refund_order 1.1.0: new version (against 1.0.0), 1 breaking change" in out
    assert "  BREAKING arguments: argument 'amount' now required" in out
    assert "acme-support lookup_order 2.0.0: unchanged" in out
    assert "Dry run: nothing written (1 new, 0 changed, 1 unchanged)." in out
    assert ToolContract.objects.count() == 2


def test_a_changed_version_is_updated_in_place(project, tmp_path):
    apply(write_yaml(tmp_path, [LOOKUP]), "--project", project.slug)
    out = apply(
        write_yaml(tmp_path, [{**LOOKUP, "status": "deprecated"}]), "--project", project.slug
    )
    assert "lookup_order 2.0.0: changed, no breaking change" in out
    assert ToolContract.objects.get().status == "deprecated"


def test_an_invalid_schema_names_contract_and_pointer_and_writes_nothing(project, tmp_path):
    bad = {**LOOKUP, "name": "bad_tool", "result_schema": {"properties": {"x": {"type": 7}}}}
    path = write_yaml(tmp_path, [REFUND_V1, bad], project=project.slug)
    with pytest.raises(CommandError) as exc:
        apply(path)
    message = str(exc.value)
    assert "nothing written" in message
    assert (
        "contract #2 (bad_tool 2.0.0): result_schema: Invalid JSON Schema at /properties/x/type"
        in message
    )
    assert ToolContract.objects.count() == 0


def test_it_exits_non_zero_from_the_command_line(project, tmp_path, capsys):
    path = write_yaml(tmp_path, [{"name": "x"}], project=project.slug)
    with pytest.raises(SystemExit) as exc:
        execute_from_command_line(["manage.py", "contracts", "apply", str(path), "--dry-run"])
    assert exc.value.code == 1
    assert "contract #1 (x ?): version: Required" in capsys.readouterr().err


def test_a_project_named_twice_differently_is_refused(project, other_project, tmp_path):
    path = write_yaml(tmp_path, [LOOKUP], project=other_project.slug)
    with pytest.raises(CommandError, match="names project 'other-team' but --project"):
        apply(path, "--project", project.slug)
