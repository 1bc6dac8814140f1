"""The Contracts page: a project's tool contracts, every version with what changed from the
one before (breaking changes marked), and a form for the project's admins to register a
new version. The rules are `controls.services`' (`contract_clean`, `contract_changes`,
`contract_upsert`), the same as the API's and `manage.py contracts apply`'s.
"""

from __future__ import annotations

import json
from itertools import groupby

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect, render
from django.urls import reverse

from controls.models import ToolContract
from controls.services import contract_as_dict, contract_changes, contract_upsert
from traces.models import Membership
from traces.selectors import project_from_query, project_role_for_user

MAX_SCHEMA_TEXT = 64_000
FORM_FIELDS = ("name", "version", "risk", "status", "description")


def _versions(project) -> list[dict]:
    """Each tool with its versions, newest first, and each version's changes from the
    version registered before it."""
    rows = ToolContract.objects.filter(project=project).order_by("name", "created_at", "id")
    tools = []
    for name, group in groupby(rows, key=lambda c: c.name):
        versions, previous = [], None
        for contract in group:
            current = contract_as_dict(contract)
            changes = contract_changes(old=previous, new=current) if previous else []
            versions.append(
                {
                    "contract": contract,
                    "changes": changes,
                    "breaking": any(c.breaking for c in changes),
                    "arguments": json.dumps(contract.arguments_schema, indent=2),
                    "result": json.dumps(contract.result_schema, indent=2),
                }
            )
            previous = current
        versions.reverse()
        tools.append({"name": name, "versions": versions})
    return tools


def _schema(text: str, field: str, errors: dict) -> dict | None:
    text = (text or "").strip() or "{}"
    if len(text) > MAX_SCHEMA_TEXT:
        errors[field] = [f"At most {MAX_SCHEMA_TEXT} characters."]
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        errors[field] = [f"Not valid JSON: {exc}"]
        return None


def contracts_page(request):
    projects, project = project_from_query(user=request.user, slug=request.GET.get("project", ""))
    is_admin = bool(project) and (
        project_role_for_user(user=request.user, project=project) == Membership.Role.ADMIN
    )
    form = {"arguments_schema": "{}", "result_schema": "{}", "risk": "low", "status": "active"}
    errors: dict[str, list[str]] = {}
    if request.method == "POST" and project is not None:
        if not is_admin:
            raise PermissionDenied("Only the project's admins register contracts.")
        form = {k: request.POST.get(k, "") for k in (*FORM_FIELDS, "arguments_schema")}
        form["result_schema"] = request.POST.get("result_schema", "")
        data = {k: form[k] for k in FORM_FIELDS}
        data["side_effects"] = request.POST.get("side_effects") == "on"
        data["requires_idempotency_key"] = request.POST.get("requires_idempotency_key") == "on"
        form.update(
            side_effects=data["side_effects"],
            requires_idempotency_key=data["requires_idempotency_key"],
        )
        for field in ("arguments_schema", "result_schema"):
            data[field] = _schema(form[field], field, errors)
        name, version = data["name"].strip(), data["version"].strip()
        if ToolContract.objects.filter(project=project, name=name, version=version).exists():
            errors["version"] = [f"{name} {version} is already registered."]
        if not errors:
            try:
                result = contract_upsert(project=project, data=data)
            except ValidationError as exc:
                errors = exc.message_dict
            else:
                plan = result.plan
                note = f"Registered {plan.name} {plan.version}."
                if plan.against:
                    breaking = sum(c.breaking for c in plan.changes)
                    note += (
                        f" {len(plan.changes)} change(s) from {plan.against}, {breaking} breaking."
                    )
                messages.success(request, note)
                return redirect(f"{reverse('contracts')}?project={project.slug}#tool-{name}")
    return render(
        request,
        "controls/contracts.html",
        {
            "projects": projects,
            "project": project,
            "tools": _versions(project) if project else [],
            "is_admin": is_admin,
            "form": form,
            "errors": errors,
            "general_errors": errors.get("__all__", []),
            "risks": ToolContract.Risk.choices,
            "statuses": ToolContract.Status.choices,
        },
        status=400 if errors else 200,
    )
