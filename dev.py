#!/usr/bin/env python3
"""The two set-up commands of the README, with nothing needed but Python 3.11+.

    python3 dev.py up      start the console on SQLite with a demo login and demo traffic
    python3 dev.py test    lint, check migrations and run the whole test suite

Both create `.venv/` beside this file and install the project, and the SDK in sdk/ (the
governed demo agents use it), into it when pyproject.toml or sdk/pyproject.toml has
changed since the last install. Extra arguments are passed on
(`python3 dev.py up --port 9000`, `python3 dev.py test -k ingest`).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PY = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def run(*cmd: str | Path, check: bool = True) -> int:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    code = subprocess.call([str(c) for c in cmd], cwd=ROOT)
    if check and code:
        sys.exit(code)
    return code


def ensure_env(extra: str) -> None:
    if not PY.exists():
        print(f"Creating {VENV.name}/ …", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    manifests = (ROOT / "pyproject.toml").read_bytes() + (ROOT / "sdk/pyproject.toml").read_bytes()
    spec = hashlib.sha256(manifests + extra.encode()).hexdigest()
    stamp = VENV / ".installed"
    if not stamp.exists() or stamp.read_text() != spec:
        target = f".[{extra}]" if extra else "."
        # Both editable, in one resolution; the SDK with its validation extra (jsonschema).
        run(
            PY, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
            "-e", target, "-e", "./sdk[validate]",
        )  # fmt: skip
        stamp.write_text(spec)


def main(argv: list[str]) -> None:
    command, rest = (argv[0], argv[1:]) if argv else ("", [])
    if command == "up":
        ensure_env("")
        os.chdir(ROOT)
        os.execv(PY, [str(PY), "manage.py", "up", *rest])  # noqa: S606 - our venv's python
    elif command == "test":
        ensure_env("dev")
        run(PY, "-m", "ruff", "check", ".")
        run(PY, "-m", "ruff", "format", "--check", ".")
        # The arrows between the apps, declared in pyproject.toml ([tool.importlinter]).
        run(PY.with_name("lint-imports" + (".exe" if os.name == "nt" else "")), "--no-logo")
        run(PY, "manage.py", "makemigrations", "--check", "--dry-run")
        sys.exit(run(PY, "-m", "pytest", *rest, check=False))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
