"""The embedded default's broker (kombu's filesystem transport) runs without remote
control: its broadcast exchange, written by several processes at once, can be left
half-written and stop the worker with a JSONDecodeError."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRINT = (
    "import django; django.setup(); from agentops_site.celery import app; "
    "print(app.conf.broker_url, app.conf.worker_enable_remote_control)"
)


def _conf(tmp_path, **env) -> str:
    environ = {
        k: v for k, v in os.environ.items() if k not in ("CELERY_BROKER_URL", "DATABASE_URL")
    }
    environ.update(DJANGO_SETTINGS_MODULE="agentops_site.settings", VAR_DIR=str(tmp_path), **env)
    done = subprocess.run(
        [sys.executable, "-c", PRINT], cwd=ROOT, env=environ, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_filesystem_broker_runs_without_remote_control(tmp_path):
    assert _conf(tmp_path) == "filesystem:// False"
    assert _conf(tmp_path, CELERY_BROKER_URL="redis://127.0.0.1:6379/0").endswith(" True")
