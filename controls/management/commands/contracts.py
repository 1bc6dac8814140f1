"""`manage.py contracts apply <file>`: tool contracts as code.

The file (YAML or JSON) is either a list of contracts or an object with `contracts`
and optionally `project` (a slug; `--project` must agree with it). Every contract is
validated before anything is written, and all are written in one transaction.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from controls.selectors import contract_latest
from controls.services import (
    ContractPlan,
    contract_as_dict,
    contract_clean,
    contract_plan,
    contract_upsert,
)
from traces.models import Project

ACTION_LABELS = {
    "new": "new",
    "new_version": "new version",
    "changed": "changed",
    "unchanged": "unchanged",
}


def _load(path: Path):
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        # YAML is a superset of JSON, so any other file is read as YAML.
        return yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise CommandError(
            f"{path}: not valid {path.suffix.lstrip('.') or 'YAML'}: {exc}"
        ) from None


def _describe(plan: ContractPlan) -> list[str]:
    head = f"{plan.name} {plan.version}: {ACTION_LABELS[plan.action]}"
    if plan.action == "new_version":
        head += f" (against {plan.against})"
    if plan.changes:
        n = sum(c.breaking for c in plan.changes)
        head += f", {n} breaking change{'s' if n != 1 else ''}" if n else ", no breaking change"
    lines = [head]
    for c in plan.changes:
        mark = "BREAKING" if c.breaking else "ok      "
        lines.append(f"  {mark} {c.part}: {c.message}")
    return lines


class Command(BaseCommand):
    help = "Manage tool contracts as code."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="subcommand", required=True)
        apply = sub.add_parser(
            "apply", help="Create or update the contracts of a YAML or JSON file (idempotent)."
        )
        apply.add_argument("file", type=Path)
        apply.add_argument(
            "--project", metavar="SLUG", help="The project (or `project:` in the file)"
        )
        apply.add_argument(
            "--dry-run", action="store_true", help="Print what would change; write nothing."
        )

    def handle(self, *args, subcommand, file: Path, project=None, dry_run=False, **options):
        doc = _load(file)
        if isinstance(doc, list):
            doc = {"contracts": doc}
        if not isinstance(doc, dict) or not isinstance(doc.get("contracts"), list):
            raise CommandError(f"{file}: expected a list of contracts or a `contracts:` list.")
        slug = project or doc.get("project")
        if project and doc.get("project") and doc["project"] != project:
            raise CommandError(
                f"{file}: names project {doc['project']!r} but --project is {project!r}."
            )
        if not slug:
            raise CommandError(f"{file}: name the project with --project or `project:`.")
        try:
            target = Project.objects.get(slug=slug)
        except Project.DoesNotExist:
            raise CommandError(f"No project {slug!r}.") from None

        cleaned, errors, seen = [], [], set()
        for i, raw in enumerate(doc["contracts"]):
            if not isinstance(raw, dict):
                errors.append(f"contract #{i + 1}: must be a mapping of fields")
                continue
            label = f"contract #{i + 1} ({raw.get('name', '?')} {raw.get('version', '?')})"
            try:
                data = contract_clean(raw)
            except ValidationError as exc:
                for fname, messages in exc.message_dict.items():
                    where = "" if fname == "__all__" else f"{fname}: "
                    errors.extend(f"{label}: {where}{m}" for m in messages)
                continue
            key = (data["name"], data["version"])
            if key in seen:
                errors.append(f"{label}: appears twice in the file")
            seen.add(key)
            cleaned.append(data)
        if errors:
            raise CommandError(f"{file}: nothing written.\n" + "\n".join(errors))

        # Several versions of one name in a file are compared in file order.
        latest: dict[str, dict] = {}
        plans = []
        for data in cleaned:
            if data["name"] not in latest:
                row = contract_latest(project=target, name=data["name"])
                if row is not None:
                    latest[data["name"]] = contract_as_dict(row)
            plan = contract_plan(project=target, data=data, latest=latest.get(data["name"]))
            if plan.action in ("new", "new_version"):
                latest[data["name"]] = data
            plans.append(plan)

        for plan in plans:
            for line in _describe(plan):
                self.stdout.write(f"{target.slug} {line}" if not line.startswith("  ") else line)
        counts = {a: sum(p.action == a for p in plans) for a in ACTION_LABELS}
        summary = (
            f"{counts['new'] + counts['new_version']} new, {counts['changed']} changed, "
            f"{counts['unchanged']} unchanged"
        )
        if dry_run:
            self.stdout.write(f"Dry run: nothing written ({summary}).")
            return
        if counts["unchanged"] == len(plans):
            self.stdout.write(f"Nothing to change ({summary}).")
            return
        with transaction.atomic():
            for data in cleaned:
                contract_upsert(project=target, data=data)
        self.stdout.write(self.style.SUCCESS(f"Applied: {summary}."))
