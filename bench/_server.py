"""Starting the console's web server for a benchmark, the way production starts it.

`--server asgi` (the default, what `manage.py up` and the Docker image run) is gunicorn
with the uvicorn workers of `agentops_site.server`; `--server sync` is plain gunicorn
sync workers on the WSGI application, kept for comparison.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def start(*, server: str, port: int, workers: int, env: dict, preload: bool = True):
    """Start the server and wait for /healthz. (The asgi configuration always preloads.)"""
    env = {**env, "BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": str(workers), "ACCESS_LOG": ""}
    if server == "asgi":
        cmd = [
            PY,
            "-m",
            "gunicorn",
            "-c",
            "python:agentops_site.gunicorn_conf",
            "--log-level",
            "warning",
            "agentops_site.asgi:application",
        ]
    else:
        cmd = [
            PY, "-m", "gunicorn", "agentops_site.wsgi:application", "--bind", f"127.0.0.1:{port}",
            "--workers", str(workers), "--no-control-socket", "--log-level", "warning",
            *(["--preload"] if preload else []),
        ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    for _ in range(150):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return proc
        except OSError:
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit("the server did not come up")


def use_fresh_database(*, pg: str, name: str, sqlite: bool = False) -> None:
    """Point this process's Django at a new, empty, migrated database: PostgreSQL `name`
    at `pg` (dropped and created), or a SQLite file in a temporary folder."""
    import os
    import tempfile

    if sqlite:
        os.environ["DATABASE_URL"] = f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.sqlite3'}"
    else:
        for sql in (f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", f"CREATE DATABASE {name}"):
            subprocess.run(["psql", f"{pg}/postgres", "-qtAc", sql], check=True)
        os.environ["DATABASE_URL"] = f"{pg}/{name}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentops_site.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
