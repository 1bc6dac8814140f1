"""Known answers for contract validation and the changes between two versions."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from controls.services import contract_changes, contract_clean

BASE_ARGS = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string"},
        "amount": {"type": "number"},
        "note": {"type": ["string", "null"]},
        "reason": {"enum": ["damaged", "late", "other"]},
    },
    "required": ["order_id"],
}
BASE_RESULT = {
    "type": "object",
    "properties": {"refund_id": {"type": "string"}, "status": {"type": "string"}},
    "required": ["refund_id", "status"],
}


def contract(**overrides):
    return contract_clean(
        {
            "name": "refund_order",
            "version": "1.0.0",
            "arguments_schema": BASE_ARGS,
            "result_schema": BASE_RESULT,
            "side_effects": True,
            **overrides,
        }
    )


def args_with(*, properties=None, required=None, drop=()):
    props = {k: v for k, v in {**BASE_ARGS["properties"], **(properties or {})}.items()}
    for name in drop:
        props.pop(name)
    return {
        **BASE_ARGS,
        "properties": props,
        "required": BASE_ARGS["required"] if required is None else required,
    }


def changes(**overrides):
    return [(c.part, c.pointer, c.breaking) for c in contract_changes(
        old=contract(), new=contract(version="1.1.0", **overrides)
    )]  # fmt: skip


def test_it_finds_no_change_between_identical_contracts():
    assert changes() == []


def test_a_newly_required_existing_argument_breaks():
    assert changes(arguments_schema=args_with(required=["order_id", "amount"])) == [
        ("arguments", "/required", True)
    ]


def test_a_new_required_argument_breaks():
    new = args_with(properties={"currency": {"type": "string"}}, required=["order_id", "currency"])
    assert changes(arguments_schema=new) == [("arguments", "/properties/currency", True)]


def test_a_new_optional_argument_does_not_break():
    new = args_with(properties={"currency": {"type": "string"}})
    assert changes(arguments_schema=new) == [("arguments", "/properties/currency", False)]


def test_a_removed_argument_breaks():
    assert changes(arguments_schema=args_with(drop=["amount"])) == [
        ("arguments", "/properties/amount", True)
    ]


def test_dropping_null_from_an_argument_type_narrows_it_and_breaks():
    found = contract_changes(
        old=contract(),
        new=contract(arguments_schema=args_with(properties={"note": {"type": "string"}})),
    )
    assert [(c.pointer, c.breaking) for c in found] == [("/properties/note", True)]
    assert "narrowed from null/string to string" in found[0].message


def test_number_to_integer_narrows_and_breaks():
    new = args_with(properties={"amount": {"type": "integer"}})
    assert changes(arguments_schema=new) == [("arguments", "/properties/amount", True)]


def test_integer_to_number_widens_and_does_not_break():
    old = contract(arguments_schema=args_with(properties={"amount": {"type": "integer"}}))
    found = contract_changes(old=old, new=contract())
    assert [(c.pointer, c.breaking) for c in found] == [("/properties/amount", False)]
    assert "widened" in found[0].message


def test_an_enum_with_fewer_values_breaks_and_more_values_does_not():
    fewer = args_with(properties={"reason": {"enum": ["damaged", "late"]}})
    more = args_with(properties={"reason": {"enum": ["damaged", "late", "other", "fraud"]}})
    assert changes(arguments_schema=fewer) == [("arguments", "/properties/reason", True)]
    assert changes(arguments_schema=more) == [("arguments", "/properties/reason", False)]


def test_an_argument_made_optional_does_not_break():
    assert changes(arguments_schema=args_with(required=[])) == [("arguments", "/required", False)]


def test_a_removed_result_property_breaks():
    new = {
        **BASE_RESULT,
        "properties": {"refund_id": {"type": "string"}},
        "required": ["refund_id"],
    }
    assert ("result", "/properties/status", True) in changes(result_schema=new)


def test_a_new_result_property_does_not_break():
    new = {
        **BASE_RESULT,
        "properties": {**BASE_RESULT["properties"], "eta": {"type": "string"}},
    }
    assert changes(result_schema=new) == [("result", "/properties/eta", False)]


def test_a_widened_result_type_breaks_readers():
    new = {
        **BASE_RESULT,
        "properties": {**BASE_RESULT["properties"], "status": {"type": ["string", "null"]}},
    }
    assert changes(result_schema=new) == [("result", "/properties/status", True)]


def test_description_changes_do_not_break():
    new = args_with(properties={"amount": {"type": "number", "description": "In cents"}})
    assert changes(description="Refunds an order", arguments_schema=new) == [
        ("arguments", "/properties/amount", False),
        ("contract", "", False),
    ]


def test_requiring_an_idempotency_key_breaks():
    assert changes(requires_idempotency_key=True) == [("contract", "", True)]


def test_an_invalid_schema_names_the_field_and_the_json_pointer():
    bad = args_with(properties={"amount": {"type": "money"}})
    with pytest.raises(ValidationError) as exc:
        contract(arguments_schema=bad)
    [message] = exc.value.message_dict["arguments_schema"]
    assert message.startswith("Invalid JSON Schema at /properties/amount/type:")


def test_it_refuses_a_version_that_is_not_a_string():
    with pytest.raises(ValidationError) as exc:
        contract(version=1.1, risk="extreme")
    assert set(exc.value.message_dict) == {"version", "risk"}
