"""The controls' sweep commands refuse an unknown project and a --since that is no date."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command


@pytest.mark.parametrize("command", ["check_contracts", "detect_findings", "record_decisions"])
def test_an_unknown_project_is_refused(db, command):
    with pytest.raises(CommandError, match="No project 'nope'"):
        call_command(command, "--project", "nope")


@pytest.mark.parametrize("command", ["detect_findings", "record_decisions"])
def test_a_since_that_is_no_date_is_refused(db, command):
    with pytest.raises(CommandError, match="is not an ISO 8601"):
        call_command(command, "--since", "yesterday")
