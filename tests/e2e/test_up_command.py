"""The README's first command: `manage.py up` starts the console and demo traffic
arrives through the real exporter, on a fresh SQLite database; the governed demo agents
ask for policy and budget decisions through the SDK, and their tool calls are checked
against the demo contracts by the beat's worker."""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.otlp_client import record, simple_run

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.live
def test_up_starts_the_console_worker_and_beat_with_a_login_and_demo_traces(tmp_path):
    port, grpc_port = free_port(), free_port()
    env = {
        **os.environ,
        "VAR_DIR": str(tmp_path),
        "AGENTOPS_ENV": "development",
        "PYTHONUNBUFFERED": "1",
        "ROLLUP_EVERY_SECONDS": "2",
    }
    env.pop("DATABASE_URL", None)  # the embedded default: SQLite in VAR_DIR
    env.pop("CELERY_BROKER_URL", None)  # and the broker that needs no server
    proc = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "up",
            "--port",
            str(port),
            "--grpc-port",
            str(grpc_port),
            "--history",
            "4",
            "--every",
            "0",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
            output.append(line)
            if "governed runs through the SDK" in line or "No governed demo agents" in line:
                break
        text = "".join(output)
        assert "Sent 4 demo runs" in text, text
        governed = re.search(
            r"Sent (\d+) governed runs through the SDK \(.*?\): (.*)\.$", text, re.M
        )
        assert governed, text
        assert governed.group(2) == (
            "lookup: done, refund: refunded, big_refund: escalated, close_account: denied, "
            "bad_arguments: violation, runaway: budget_stop"
        )
        runs = 4 + int(governed.group(1))
        login = re.search(r"Log in\s+(\S+) / (\S+)", text)
        assert login, text
        key = re.search(r"Demo key\s+(ak_\S+)", text).group(1)

        assert f"Database ready: {tmp_path / 'agentops.sqlite3'}" in text, text
        db = sqlite3.connect(tmp_path / "agentops.sqlite3")
        traces = db.execute("SELECT count(*), sum(span_count) FROM traces_trace").fetchone()
        # root, plan, tool call and final answer at the least
        assert traces[0] == runs and traces[1] >= 4 * 4
        assert len(key) > 20
        assert (tmp_path / "demo-password").read_text().strip() == login.group(2)
        # The demo speaks of KPIs, phases and versions the KPI pages can compare.
        assert db.execute("SELECT count(*) FROM traces_kpi").fetchone()[0] == 2
        assert db.execute("SELECT count(*) FROM traces_outcome").fetchone()[0] >= 4 * 3

        # Beat and the worker run beside the web server, on the serverless broker: the
        # spans get folded into rollups without anyone calling the task.
        deadline = time.monotonic() + 60
        folded = 0
        while time.monotonic() < deadline and folded < traces[1]:
            folded = db.execute(
                "SELECT coalesce(sum(span_count), 0) FROM traces_rollup"
            ).fetchone()[0]
            time.sleep(0.5)
        assert folded == traces[1]
        # Every policy decision the governed agents asked for is recorded ...
        decisions = dict(
            db.execute("SELECT decision, count(*) FROM controls_policydecision GROUP BY 1")
        )
        assert decisions == {"allow": 2, "escalate": 1, "deny": 1}
        # ... and the beat's contract check finds the planted violation among the tool calls.
        deadline = time.monotonic() + 180  # generous: the beat and worker share a busy machine
        checks = {}
        while time.monotonic() < deadline and "arguments_invalid" not in checks:
            checks = dict(
                db.execute("SELECT outcome, count(*) FROM controls_contractcheck GROUP BY 1")
            )
            time.sleep(0.5)
        assert checks.get("arguments_invalid") == 1, checks
        assert checks.get("ok", 0) >= 4, checks
        # The serverless broker keeps all its folders in VAR_DIR, none in the checkout.
        assert (tmp_path / "broker" / "control").is_dir()
        assert not (ROOT / "control").exists()

        # The printed login works on the running server.
        import http.cookiejar
        import urllib.parse
        import urllib.request

        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        base = f"http://127.0.0.1:{port}"
        page = opener.open(f"{base}/accounts/login/").read().decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        data = urllib.parse.urlencode(
            {
                "username": login.group(1),
                "password": login.group(2),
                "csrfmiddlewaretoken": token,
            }
        ).encode()
        request = urllib.request.Request(
            f"{base}/accounts/login/", data=data, headers={"Referer": f"{base}/accounts/login/"}
        )
        landed = opener.open(request)
        assert "/accounts/login/" not in landed.geturl()

        # The OTLP/gRPC receiver runs beside it and takes the demo key.
        assert f"OTLP/gRPC 127.0.0.1:{grpc_port}" in text, text
        grpc_exporter = OTLPSpanExporter(
            endpoint=f"http://127.0.0.1:{grpc_port}",
            insecure=True,
            headers={"authorization": f"Bearer {key}"},
            timeout=10,
        )
        assert grpc_exporter.export(record(simple_run)) is SpanExportResult.SUCCESS
        grpc_exporter.shutdown()
        assert db.execute("SELECT count(*) FROM traces_trace").fetchone()[0] == runs + 1
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def test_up_goes_on_without_the_grpc_receiver_when_its_port_is_busy():
    from agentops_site.management.commands.up import Command

    errors = io.StringIO()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = Command(stderr=errors)._start_grpc("127.0.0.1", port, dict(os.environ))

    assert started is None
    assert f"Port {port} is busy" in errors.getvalue()
    assert "--grpc-port" in errors.getvalue()
