import pytest
from django.core.management import CommandError, call_command

from tests.factories import UserFactory
from traces.models import IngestKey, Membership, Project
from traces.services import ingest_key_authenticate, key_hash

pytestmark = pytest.mark.django_db


def test_createproject_prints_a_working_key_alone_on_the_last_line(capsys):
    UserFactory(username="ops")
    call_command("createproject", "support-bot", "--name", "Support bot", "--admin", "ops")

    last = capsys.readouterr().out.splitlines()[-1]
    project = Project.objects.get(slug="support-bot")
    assert project.name == "Support bot"
    assert ingest_key_authenticate(secret=last).project_id == project.pk
    key = IngestKey.objects.get(project=project)
    assert key.key_hash == key_hash(last)
    assert last not in {key.key_hash, key.prefix}
    assert Membership.objects.get(project=project).role == "admin"


def test_createproject_refuses_a_duplicate_or_bad_slug():
    call_command("createproject", "dup")
    with pytest.raises(CommandError, match="exists already"):
        call_command("createproject", "dup")
    with pytest.raises(CommandError, match="not a valid slug"):
        call_command("createproject", "no spaces please")


def test_createproject_refuses_an_unknown_admin():
    with pytest.raises(CommandError, match="No user named"):
        call_command("createproject", "p1", "--admin", "ghost")
    assert not Project.objects.filter(slug="p1").exists()
