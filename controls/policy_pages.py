"""The Policies pages: a project's Cedar policies, their versions, the editor and the trial
of a draft on a sample request. Members read and try; the project's admins (and staff)
save and restore. The logic is `controls.policies`'; the sample request is validated by
the same serializer as `POST /api/policy/try`.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse

from controls.api.serializers import PolicyTrySerializer
from controls.models import PolicyVersion
from controls.policies import (
    SCHEMA,
    policy_try,
    policy_version_create,
    policy_version_get,
    policy_version_list,
    policy_version_restore,
)
from traces.models import Membership, Phase, Project
from traces.selectors import project_from_query, project_role_for_user

VERSIONS_SHOWN = 100
MAX_ARGUMENTS_TEXT = 64_000
SAMPLE_FIELDS = ("agent", "agent_version", "phase", "tool", "amount", "risk", "confidence")
SAMPLE_DEFAULTS = {"arguments": "{}", "amount": "0", "confidence": "1"}
STARTER = """// No policies yet: every check is denied ("no policy"). An example to start from:
@id("low-risk-tools")
permit(principal, action == Action::"call_tool", resource)
when { resource.contracted && resource.risk == "low" };
"""


def _page_url(project: Project, name: str = "controls-policies", **kwargs) -> str:
    return f"{reverse(name, kwargs=kwargs or None)}?{urlencode({'project': project.slug})}"


def _context(request) -> tuple[Project | None, dict]:
    projects, project = project_from_query(user=request.user, slug=request.GET.get("project", ""))
    can_edit = project is not None and (
        project_role_for_user(user=request.user, project=project) == Membership.Role.ADMIN
    )
    return project, {
        "projects": projects,
        "nav_projects": projects,
        "switch_url": reverse("controls-policies"),
        "nav": "controls",
        "project": project,
        "can_edit": can_edit,
    }


def _errors(exc: ValidationError) -> dict[str, list[str]]:
    return exc.message_dict if hasattr(exc, "error_dict") else {"text": exc.messages}


def _sample(post) -> tuple[dict, dict[str, list[str]]]:
    """The sample request of the form as the try serializer takes it, and the errors of
    its JSON arguments."""
    data = {name: post.get(name, "") for name in SAMPLE_FIELDS}
    raw = post.get("arguments", "").strip() or "{}"
    if len(raw) > MAX_ARGUMENTS_TEXT:
        return data, {"arguments": [f"At most {MAX_ARGUMENTS_TEXT} characters."]}
    try:
        data["arguments"] = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        return data, {"arguments": [f"Not valid JSON: {exc}"[:200]]}
    return data, {}


def _try(request, project: Project, *, text: str) -> tuple[object | None, dict]:
    """(the trial's answer, errors by field): the draft `text`, or the active version
    when `text` is empty."""
    data, errors = _sample(request.POST)
    if errors:
        return None, errors
    question = PolicyTrySerializer(data=data)
    if not question.is_valid():
        return None, {k: [str(m) for m in v] for k, v in question.errors.items()}
    fields = {**question.validated_data, "text": text}
    try:
        return policy_try(project=project, **fields), {}
    except ValidationError as exc:
        return None, _errors(exc)


def policies_page(request):
    """The active policies and the editor (GET); save a new version or try a text (POST)."""
    project, context = _context(request)
    if project is None:
        if request.method == "POST":
            raise Http404("No such project")
        return render(request, "controls/policies.html", context)
    versions = list(policy_version_list(project=project)[:VERSIONS_SHOWN])
    active = next((v for v in versions if v.active), None)
    if active is None:  # the newest 100 always hold it, but a restore may race a read
        active = PolicyVersion.objects.filter(project=project, active=True).first()
    text = active.text if active else STARTER
    if start := request.GET.get("from", ""):
        try:
            text = policy_version_get(project=project, number=int(start)).text
        except (ValueError, PolicyVersion.DoesNotExist):
            raise Http404("No such policy version") from None
    sample = {**SAMPLE_DEFAULTS}
    status = 200
    if request.method == "POST":
        action = request.POST.get("action", "")
        text = request.POST.get("text", "")
        sample.update({k: request.POST.get(k, "") for k in (*SAMPLE_FIELDS, "arguments")})
        if action == "save":
            if not context["can_edit"]:
                raise PermissionDenied("Only the project's admins save policies.")
            try:
                version = policy_version_create(
                    project=project, text=text, created_by=request.user.get_username()
                )
            except ValidationError as exc:
                context["text_errors"] = _errors(exc).get("text", exc.messages)
                status = 400
            else:
                messages.success(request, f"Saved as version {version.number}; it is active.")
                return redirect(_page_url(project))
        elif action in ("try", "try-active"):
            draft = text if action == "try" else ""
            answer, errors = _try(request, project, text=draft)
            context["tried"] = "the draft" if draft.strip() else "the active version"
            context["answer"] = answer
            context["text_errors"] = errors.pop("text", None)
            context["sample_errors"] = errors
            status = 400 if answer is None else 200
        else:
            return HttpResponseBadRequest("Unknown action.")
    context.update(
        {
            "active": active,
            "versions": versions,
            "more_versions": len(versions) == VERSIONS_SHOWN,
            "next_number": versions[0].number + 1 if versions else 1,
            "text": text,
            "sample": sample,
            "phases": [p for p in Phase if p != Phase.HUMAN],
            "schema": SCHEMA.strip(),
        }
    )
    return render(request, "controls/policies.html", context, status=status)


def policy_version_page(request, number: int):
    """One version's text (GET); restore it as a new version (POST, admins)."""
    project, context = _context(request)
    if project is None:
        raise Http404("No such project")
    try:
        version = policy_version_get(project=project, number=number)
    except PolicyVersion.DoesNotExist:
        raise Http404("No such policy version") from None
    status = 200
    if request.method == "POST":
        if not context["can_edit"]:
            raise PermissionDenied("Only the project's admins restore policies.")
        try:
            restored = policy_version_restore(
                project=project, number=number, created_by=request.user.get_username()
            )
        except ValidationError as exc:
            context["restore_errors"] = [m for ms in _errors(exc).values() for m in ms]
            status = 400
        else:
            messages.success(
                request, f"Version {number} restored as version {restored.number}; it is active."
            )
            return redirect(_page_url(project))
    context.update({"version": version, "list_url": _page_url(project)})
    return render(request, "controls/policies_version.html", context, status=status)
