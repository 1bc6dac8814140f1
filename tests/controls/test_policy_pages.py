"""Policies edited and versioned in the console and over the API: each save a new version,
validated on save, old versions readable and restorable, a draft tried on a sample request
without an audit row. Members read and try; the project's admins save."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.urls import reverse

from controls.models import PolicyDecision, PolicyVersion
from controls.policies import policy_version_create
from controls.services import contract_upsert
from rollouts.models import AgentPhase
from tests.factories import MembershipFactory, UserFactory
from traces.models import Membership

pytestmark = pytest.mark.django_db

V1 = """@id("low-risk-tools")
permit(principal, action == Action::"call_tool", resource)
when { resource.risk == "low" };
"""
V2 = (
    V1
    + """
@id("refunds-when-bounded")
permit(principal, action == Action::"call_tool", resource == Tool::"refund_order")
when { principal.phase == "bounded" };

@id("big-refund")
@escalate("refund over 500.00 needs a person")
forbid(principal, action, resource == Tool::"refund_order") when { context.amount > 50000 };
"""
)
# Parses, but names an attribute the schema does not have.
INVALID = 'permit(principal, action, resource) when { resource.colour == "red" };'
SAMPLE = {
    "agent": "support",
    "agent_version": "2.1",
    "phase": "",
    "tool": "refund_order",
    "arguments": '{"order_id": "A-1"}',
    "amount": "120.00",
    "risk": "high",
    "confidence": "0.9",
}


@pytest.fixture
def versions(project):
    contract_upsert(project=project, data={"name": "lookup_order", "version": "1.0.0"})
    contract_upsert(
        project=project,
        data={"name": "refund_order", "version": "1.0.0", "side_effects": True, "risk": "high"},
    )
    AgentPhase.objects.create(
        project=project, agent="support", phase="bounded", since=datetime(2026, 1, 1, tzinfo=UTC)
    )
    policy_version_create(project=project, text=V1, created_by="grace")
    return policy_version_create(project=project, text=V2, created_by="ada")


@pytest.fixture
def viewer_client(project):
    viewer = UserFactory(username="vic")
    MembershipFactory(project=project, user=viewer, role=Membership.Role.VIEWER)
    client = Client()
    client.force_login(viewer)
    return client


def page(project, number=None, **params):
    if number is None:
        url = reverse("controls-policies")
    else:
        url = reverse("controls-policy-version", args=[number])
    query = "&".join(f"{k}={v}" for k, v in {"project": project.slug, **params}.items())
    return f"{url}?{query}"


# ------------------------------------------------------------------ pages


def test_it_shows_the_active_text_and_the_versions(viewer_client, project, versions):
    response = viewer_client.get(page(project))
    assert response.status_code == 200
    body = response.content.decode()
    assert "version 2 is active" in body
    assert "refunds-when-bounded" in body  # the active text, in the editor
    table = body[body.index('id="policy-versions"') :]
    assert "v2" in table and "v1" in table and "grace" in table and "ada" in table
    assert table.index("v2") < table.index("v1")
    assert f"{reverse('controls-policy-version', args=[1])}?project={project.slug}" in body


def test_a_member_reads_and_tries_but_cannot_save(viewer_client, project, versions):
    body = viewer_client.get(page(project)).content.decode()
    assert 'value="save"' not in body and 'value="try"' in body
    response = viewer_client.post(page(project), {"action": "save", "text": V1})
    assert response.status_code == 403
    assert PolicyVersion.objects.filter(project=project).count() == 2
    response = viewer_client.post(page(project, 1))
    assert response.status_code == 403
    assert PolicyVersion.objects.get(project=project, active=True).number == 2


def test_an_admin_saves_a_new_active_version(client_logged_in, project, versions):
    response = client_logged_in.post(page(project), {"action": "save", "text": V1})
    assert response.status_code == 302
    new = PolicyVersion.objects.get(project=project, active=True)
    assert (new.number, new.text, new.created_by) == (3, V1, "ada")
    assert PolicyVersion.objects.get(project=project, number=2).text == V2  # kept, readable
    body = client_logged_in.get(response["Location"]).content.decode()
    assert "Saved as version 3" in body and "version 3 is active" in body


def test_an_invalid_text_is_not_saved_and_is_shown_with_its_errors(
    client_logged_in, project, versions
):
    response = client_logged_in.post(page(project), {"action": "save", "text": INVALID})
    assert response.status_code == 400
    body = response.content.decode()
    assert 'id="text-errors"' in body and "colour" in body
    # The text is kept in the editor for the author to fix.
    assert "resource.colour == &quot;red&quot;" in body
    assert PolicyVersion.objects.filter(project=project).count() == 2


def test_an_old_version_stays_readable(viewer_client, project, versions):
    response = viewer_client.get(page(project, 1))
    assert response.status_code == 200
    body = response.content.decode()
    assert "version 1" in body and "grace" in body and "low-risk-tools" in body
    assert "big-refund" not in body
    assert 'id="restore"' not in body  # a member: no restore
    assert viewer_client.get(page(project, 9)).status_code == 404
    assert viewer_client.get(page(project, 2**40)).status_code == 404


def test_restore_saves_the_old_text_as_a_new_version(client_logged_in, project, versions):
    assert 'id="restore"' in client_logged_in.get(page(project, 1)).content.decode()
    response = client_logged_in.post(page(project, 1))
    assert response.status_code == 302
    rows = list(PolicyVersion.objects.filter(project=project).order_by("number"))
    assert [(v.number, v.active) for v in rows] == [(1, False), (2, False), (3, True)]
    assert rows[2].text == V1 and rows[0].text == V1 and rows[1].text == V2
    assert "restored as version 3" in client_logged_in.get(response["Location"]).content.decode()


def test_restoring_the_active_version_is_refused(client_logged_in, project, versions):
    response = client_logged_in.post(page(project, 2))
    assert response.status_code == 400
    assert "is the active one" in response.content.decode()
    assert PolicyVersion.objects.filter(project=project).count() == 2


def test_editing_from_an_old_version_starts_from_its_text(client_logged_in, project, versions):
    body = client_logged_in.get(page(project, **{"from": 1})).content.decode()
    editor = body[body.index('id="policy-text"') : body.index("</textarea>")]
    assert "low-risk-tools" in editor and "big-refund" not in editor
    assert client_logged_in.get(page(project, **{"from": "x"})).status_code == 404


def test_trying_a_draft_decides_and_records_nothing(viewer_client, project, versions):
    draft = V2.replace("context.amount > 50000", "context.amount > 10000")
    response = viewer_client.post(page(project), {"action": "try", "text": draft, **SAMPLE})
    assert response.status_code == 200
    answer = response.context["answer"]
    assert (answer.decision, answer.policy_ids) == ("escalate", ["big-refund"])
    assert answer.reason == "refund over 500.00 needs a person"
    assert answer.phase == "bounded" and answer.policy_version is None
    body = response.content.decode()
    assert 'id="try-decision">escalate<' in body and "big-refund" in body
    # The draft stays in the editor; nothing saved, nothing audited.
    assert "context.amount &gt; 10000" in body
    assert PolicyDecision.objects.count() == 0
    assert PolicyVersion.objects.filter(project=project).count() == 2


def test_trying_the_active_version(viewer_client, project, versions):
    response = viewer_client.post(
        page(project), {"action": "try-active", "text": INVALID, **SAMPLE}
    )
    assert response.status_code == 200
    answer = response.context["answer"]
    assert (answer.decision, answer.policy_ids, answer.policy_version) == (
        "allow",
        ["refunds-when-bounded"],
        2,
    )
    # "As if" another phase: shadow is not permitted refunds.
    response = viewer_client.post(
        page(project), {"action": "try-active", **SAMPLE, "phase": "shadow"}
    )
    assert response.context["answer"].decision == "deny"
    assert PolicyDecision.objects.count() == 0


def test_trying_a_paused_agent_answers_agent_paused(viewer_client, project, versions):
    AgentPhase.objects.create(
        project=project,
        agent="support",
        phase="paused",
        since=datetime.now(UTC) - timedelta(seconds=1),
    )
    response = viewer_client.post(page(project), {"action": "try", "text": V2, **SAMPLE})
    answer = response.context["answer"]
    assert (answer.decision, answer.reason, answer.phase) == ("deny", "agent paused", "paused")


def test_trying_an_invalid_draft_shows_the_errors(viewer_client, project, versions):
    response = viewer_client.post(page(project), {"action": "try", "text": INVALID, **SAMPLE})
    assert response.status_code == 400
    assert response.context["answer"] is None
    assert 'id="text-errors"' in response.content.decode()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("arguments", "{not json"),
        ("arguments", "[1, 2]"),
        ("arguments", "[" * 100_000),
        ("arguments", '{"a":' * 50 + "1" + "}" * 50),
        ("confidence", "5"),
        ("confidence", "NaN"),
        ("amount", "-1"),
        ("amount", "1e400"),
        ("agent", ""),
        ("agent", "a\x00b"),
        ("tool", "t" * 500),
        ("phase", "boss"),
    ],
)
def test_a_bad_sample_request_is_a_400_naming_the_field(
    viewer_client, project, versions, field, value
):
    viewer_client.raise_request_exception = False
    response = viewer_client.post(
        page(project), {"action": "try", "text": V2, **SAMPLE, field: value}
    )
    assert response.status_code == 400
    assert field in response.context["sample_errors"]


def test_an_unknown_action_is_a_400(client_logged_in, project, versions):
    response = client_logged_in.post(page(project), {"action": "drop", "text": V1})
    assert response.status_code == 400


def test_a_nul_in_the_text_is_refused(client_logged_in, project, versions):
    response = client_logged_in.post(
        page(project), {"action": "save", "text": V1 + "// \x00 sneaky\n"}
    )
    assert response.status_code == 400
    assert "NUL" in response.content.decode()


def test_an_outsider_gets_404_everywhere(outsider_client, project, versions):
    assert outsider_client.get(page(project)).status_code == 404
    assert outsider_client.get(page(project, 1)).status_code == 404
    assert outsider_client.post(page(project), {"action": "save", "text": V1}).status_code == 404
    assert outsider_client.post(page(project), {"action": "try", **SAMPLE}).status_code == 404
    assert outsider_client.post(page(project, 1)).status_code == 404
    assert PolicyVersion.objects.filter(project=project).count() == 2


def test_the_pages_need_a_login(project, versions):
    response = Client().get(page(project))
    assert response.status_code == 302 and "/login" in response["Location"]


def test_the_forms_are_csrf_protected(user, project, versions):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post(page(project), {"action": "save", "text": V1}).status_code == 403
    assert client.post(page(project, 1)).status_code == 403
    assert PolicyVersion.objects.filter(project=project).count() == 2
    body = client.get(page(project)).content.decode()
    assert "csrfmiddlewaretoken" in body


def test_a_project_without_policies_shows_a_starter(client_logged_in, project):
    body = client_logged_in.get(page(project)).content.decode()
    assert "every check is denied" in body and 'id="no-versions"' in body
    assert "Save as version 1" in body


def test_the_controls_page_links_to_the_policies(client_logged_in, project):
    body = client_logged_in.get(f"{reverse('controls')}?project={project.slug}").content.decode()
    assert f"{reverse('controls-policies')}?project={project.slug}" in body


def test_the_page_fits_a_phone(client_logged_in, project, versions):
    body = client_logged_in.get(page(project)).content.decode()
    assert 'name="viewport" content="width=device-width' in body
    assert "controls/policies.css" in body


# ------------------------------------------------------------------ API


def api(client, method, path, body=None, **headers):
    call = getattr(client, method)
    if body is None:
        return call(path, headers=headers)
    return call(path, body, content_type="application/json", headers=headers)


def test_the_api_lists_versions_newest_first(client_logged_in, project, versions):
    response = client_logged_in.get(f"/api/policies/?project={project.slug}")
    assert response.status_code == 200
    rows = response.json()["results"]
    assert [(r["number"], r["active"], r["created_by"]) for r in rows] == [
        (2, True, "ada"),
        (1, False, "grace"),
    ]
    assert "text" not in rows[0]
    detail = client_logged_in.get(f"/api/policies/1/?project={project.slug}").json()
    assert detail["text"] == V1 and detail["active"] is False


def test_the_api_saves_a_version_for_a_project_admin(client_logged_in, project, versions):
    response = api(client_logged_in, "post", f"/api/policies/?project={project.slug}", {"text": V1})
    assert response.status_code == 201, response.content
    assert response.json()["number"] == 3 and response.json()["active"] is True
    assert PolicyVersion.objects.get(project=project, active=True).created_by == "ada"


def test_the_api_answers_a_bad_text_with_a_400(client_logged_in, project, versions):
    url = f"/api/policies/?project={project.slug}"
    for body in ({"text": INVALID}, {"text": ""}, {"text": 5}, {}, {"text": "x" * 300_000}):
        response = api(client_logged_in, "post", url, body)
        assert response.status_code == 400, body
        assert "text" in response.json()
    assert "colour" in str(api(client_logged_in, "post", url, {"text": INVALID}).json())
    assert PolicyVersion.objects.filter(project=project).count() == 2


def test_a_project_key_reads_but_never_saves(project, versions, ingest_secret):
    client = Client(headers={"Authorization": f"Bearer {ingest_secret}"})
    assert client.get("/api/policies/").status_code == 200  # its own project by default
    assert client.get(f"/api/policies/2/?project={project.slug}").status_code == 200
    response = api(client, "post", f"/api/policies/?project={project.slug}", {"text": V1})
    assert response.status_code == 403
    assert PolicyVersion.objects.filter(project=project).count() == 2


def test_a_member_who_is_not_admin_cannot_save(viewer_client, project, versions):
    response = api(viewer_client, "post", f"/api/policies/?project={project.slug}", {"text": V1})
    assert response.status_code == 403
    assert viewer_client.get(f"/api/policies/?project={project.slug}").status_code == 200


def test_an_outsider_gets_404_from_the_api(outsider_client, project, versions):
    slug = project.slug
    assert outsider_client.get(f"/api/policies/?project={slug}").status_code == 404
    assert outsider_client.get(f"/api/policies/1/?project={slug}").status_code == 404
    assert (
        api(outsider_client, "post", f"/api/policies/?project={slug}", {"text": V1}).status_code
        == 404
    )
    body = {"project": slug, "agent": "support", "tool": "refund_order"}
    assert api(outsider_client, "post", "/api/policy/try", body).status_code == 404


def test_the_api_needs_a_project_for_a_person(client_logged_in, project, versions):
    response = client_logged_in.get("/api/policies/")
    assert response.status_code == 400 and "project" in response.json()
    assert client_logged_in.get(f"/api/policies/9/?project={project.slug}").status_code == 404
    assert client_logged_in.get(f"/api/policies/{2**40}/?project={project.slug}").status_code == 404


def test_a_session_post_to_the_api_needs_the_csrf_token(user, project, versions):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = api(client, "post", f"/api/policies/?project={project.slug}", {"text": V1})
    assert response.status_code == 403
    assert PolicyVersion.objects.filter(project=project).count() == 2


def test_the_api_tries_a_draft_without_an_audit_row(viewer_client, project, versions):
    body = {
        "text": V2.replace("context.amount > 50000", "context.amount > 10000"),
        "agent": "support",
        "tool": "refund_order",
        "amount": "120.00",
        "confidence": "0.9",
        "arguments": {"order_id": "A-1"},
    }
    response = api(viewer_client, "post", f"/api/policy/try?project={project.slug}", body)
    assert response.status_code == 200, response.content
    assert response.json() == {
        "decision": "escalate",
        "policy_ids": ["big-refund"],
        "reason": "refund over 500.00 needs a person",
        "phase": "bounded",
        "policy_version": None,
    }
    body.pop("text")  # the active version
    response = api(viewer_client, "post", f"/api/policy/try?project={project.slug}", body)
    assert response.json()["decision"] == "allow" and response.json()["policy_version"] == 2
    assert PolicyDecision.objects.count() == 0


def test_the_api_try_answers_a_bad_draft_with_a_400(viewer_client, project, versions):
    body = {"text": INVALID, "agent": "support", "tool": "refund_order"}
    response = api(viewer_client, "post", f"/api/policy/try?project={project.slug}", body)
    assert response.status_code == 400 and "text" in response.json()


def nested(depth):
    v = "leaf"
    for _ in range(depth):
        v = {"k": v}
    return v


HOSTILE = [
    {"agent": "a\x00b", "tool": "t"},
    {"agent": "a", "tool": "t", "arguments": [1, 2]},
    {"agent": "a", "tool": "t", "arguments": nested(100)},
    {"agent": "a", "tool": "t", "amount": "NaN"},
    {"agent": "a", "tool": "t", "confidence": "Infinity"},
    {"agent": "a", "tool": "t", "phase": "human"},
    {"agent": "a", "tool": "t", "text": ["permit"]},
    {"agent": "a", "tool": "t", "text": "forbid(" * 1000},
    {},
    [],
    "x",
]


def test_hostile_bodies_get_a_400_never_a_500(client_logged_in, project, versions):
    client_logged_in.raise_request_exception = False
    bad = []
    for body in HOSTILE:
        for path in (
            f"/api/policy/try?project={project.slug}",
            f"/api/policies/?project={project.slug}",
        ):
            r = api(client_logged_in, "post", path, body)
            if r.status_code != 400:
                bad.append((path, repr(body)[:60], r.status_code, r.content[:200]))
    for body in ({"agent": "a", "tool": "t", "project": ["x"]}, {"agent": "a", "tool": "t"}):
        r = api(client_logged_in, "post", "/api/policy/try", body)
        if r.status_code != 400 or "project" not in r.json():
            bad.append(("try without ?project=", repr(body), r.status_code, r.content[:200]))
    deep = '{"agent": "a", "tool": "t", "arguments": ' + "[" * 100_000 + "]" * 100_000 + "}"
    for path in (f"/api/policy/try?project={project.slug}", "/api/policy/check"):
        r = client_logged_in.post(path, deep, content_type="application/json")
        if r.status_code >= 500:
            bad.append((path, "deep", r.status_code, r.content[:200]))
    assert not bad, bad
    assert PolicyVersion.objects.filter(project=project).count() == 2


def test_a_deeply_nested_check_body_is_a_400(project, ingest_secret):
    client = Client(
        raise_request_exception=False, headers={"Authorization": f"Bearer {ingest_secret}"}
    )
    deep = '{"agent": "a", "tool": "t", "arguments": ' + '{"k":' * 100_000 + "1" + "}" * 100_001
    response = client.post("/api/policy/check", deep, content_type="application/json")
    assert response.status_code == 400
    assert PolicyDecision.objects.count() == 0


def test_the_schema_documents_the_policy_endpoints(client_logged_in):
    response = client_logged_in.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    text = response.content.decode()
    for path in ("/api/policies/", "/api/policies/{number}/", "/api/policy/try"):
        assert path in text
