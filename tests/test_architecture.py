"""The arrows between the apps, as declared once in pyproject.toml ([tool.importlinter]).

Python imports are checked by import-linter (`lint-imports`, run by the test command). The
same arrows hold in templates and static files, which import-linter cannot see: a template
of app X may load template tags, include or extend templates, and link static files only of
X, of the apps X may import, or of the site (top-level templates, `registration/`,
`admin/`, `static/agentops/`). This module checks that, and checks that the import check
itself fails on a forbidden import.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from django.template import engines

ROOT = Path(__file__).resolve().parent.parent
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
APPS = [p for p in CONFIG["root_packages"] if p != "agentops_site"]
SITE_TEMPLATE_DIRS = {"registration", "admin", "rest_framework"}

LOAD = re.compile(r"{%\s*load\s+(.+?)\s*%}")
TEMPLATE_REF = re.compile(r"""{%\s*(?:include|extends)\s+["']([^"']+)["']""")
STATIC_REF = re.compile(r"""{%\s*static\s+["']([^"']+)["']""")


def forbidden_for(app: str) -> set[str]:
    """Apps `app` may not use: the forbidden contracts naming it as a source."""
    out: set[str] = set()
    for contract in CONFIG["contracts"]:
        if contract.get("type") == "forbidden" and app in contract["source_modules"]:
            out |= {m.split(".")[0] for m in contract["forbidden_modules"]}
    return out


def template_app(name: str) -> str | None:
    """The app a template belongs to (its first folder), or None for site templates."""
    first = name.split("/", 1)[0]
    if "/" not in name or first in SITE_TEMPLATE_DIRS:
        return None
    return first


def static_app(path: str) -> str | None:
    first = path.split("/", 1)[0]
    return first if first in APPS else None


def library_app(library: str) -> str | None:
    module = engines["django"].engine.libraries.get(library)  # name → dotted module path
    app = (module or "").split(".")[0]
    return app if app in APPS else None


def templates() -> list[tuple[str, Path]]:
    found = []
    for base in [ROOT / "templates", *(ROOT / app / "templates" for app in APPS)]:
        for path in sorted(base.rglob("*.html")) if base.exists() else []:
            found.append((path.relative_to(base).as_posix(), path))
    return found


def test_the_contracts_name_every_app():
    for app in APPS:
        assert (ROOT / app / "__init__.py").exists(), f"{app} in root_packages but not a package"


def violations(name: str, text: str) -> list[str]:
    """What the template `name` uses that its app may not import."""
    owner = template_app(name)
    if owner is None:
        return []  # site-wide templates (base.html, error pages) may use any app's parts
    banned = forbidden_for(owner)
    used = []
    for match in LOAD.finditer(text):
        words = match.group(1).split()
        libraries = words[words.index("from") + 1 :] if "from" in words else words
        used += [(f"{{% load {lib} %}}", library_app(lib)) for lib in libraries]
    used += [(f"template {t}", template_app(t)) for t in TEMPLATE_REF.findall(text)]
    used += [(f"static file {s}", static_app(s)) for s in STATIC_REF.findall(text)]
    return [what for what, app in used if app in banned]


@pytest.mark.parametrize(("name", "path"), templates(), ids=[n for n, _ in templates()])
def test_templates_follow_the_arrows(name, path):
    wrong = violations(name, path.read_text())
    assert not wrong, f"{name} uses {wrong}, which its app may not import"


def test_the_template_check_fails_on_a_forbidden_use():
    template = (
        "{% load static budget_display %}{% include 'budgets/partials/usage_bar.html' %}"
        "<link href=\"{% static 'budgets/budgets.css' %}\">"
    )
    assert violations("rollouts/agents.html", template) == [
        "{% load budget_display %}",
        "template budgets/partials/usage_bar.html",
        "static file budgets/budgets.css",
    ]
    assert violations("console/overview.html", template) == []  # console composes
    assert violations("traces/trace_list.html", "{% include 'rollouts/x.html' %}") == [
        "template rollouts/x.html"
    ]


@pytest.mark.skipif(
    shutil.which("lint-imports") is None
    and not Path(sys.executable).with_name("lint-imports").exists(),
    reason="import-linter not installed",
)
def test_the_import_check_fails_on_a_forbidden_import(tmp_path):
    # The real contracts, on a copy of the app packages with one forbidden import added.
    for app in [*APPS, "agentops_site"]:
        shutil.copytree(ROOT / app, tmp_path / app, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    lint = Path(sys.executable).with_name("lint-imports")
    clean = subprocess.run([lint], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    (tmp_path / "traces" / "forbidden_example.py").write_text("import budgets.models\n")
    broken = subprocess.run([lint], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert broken.returncode != 0
    assert "traces.forbidden_example -> budgets.models" in broken.stdout
