"""`python manage.py up`: everything a newcomer needs, in one process tree.

Migrates, makes sure a demo login and a demo project with an ingest key exist, starts
the web server (gunicorn with uvicorn workers), the OTLP/gRPC receiver (`manage.py otlp_grpc`,
skipped with a notice when its port is taken), a Celery worker and Celery beat (on the broker of
CELERY_BROKER_URL: by default a folder under VAR_DIR, no server needed), and sends demo
agent traffic through the real OTLP exporter: a day of backdated history first, then
live runs at the history's rate (one run every `--every` seconds, the history spaced the
same way: traces.demo.history_starts), so the cost chart shows no step where the history
ends. Beside it run governed agents (controls.demo_agent) that ask the console before they
act through the SDK (agentops_sdk): one run of each scenario first (contracts, a violation,
policy decisions, a budget stop), then one in every few live slots.

Child processes log warnings only, and the login is printed again once the demo history is
in, so it is the last thing on the screen.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from budgets.demo import demo_budgets_ensure
from controls.demo import demo_controls_ensure
from rollouts.demo import demo_declarations_ensure
from traces.models import IngestKey, Membership, Project
from traces.services import ingest_key_create, key_hash, membership_set, project_create


class Command(BaseCommand):
    help = "Start the console with a demo project, a demo login and live demo traffic."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--workers", type=int, default=2, help="web server worker processes")
        parser.add_argument(
            "--grpc-port", type=int, default=4317, help="OTLP/gRPC receiver port (0: none)"
        )
        parser.add_argument("--no-demo", action="store_true", help="Do not send demo traffic")
        parser.add_argument(
            "--history",
            type=int,
            default=1440,
            help="Backdated demo runs to send at start, spaced --every seconds (a day by default)",
        )
        parser.add_argument(
            "--every", type=float, default=60.0, help="Seconds between live demo runs (0: none)"
        )

    def handle(self, *args, host, port, workers, grpc_port, no_demo, history, every, **options):
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("Database ready: " + str(settings.DATABASES["default"]["NAME"]))
        username, password = self._demo_login()
        key = self._demo_key()

        base = f"http://{host}:{port}"
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "agentops_site.settings"}
        # Links in alerts and set-up instructions point at this server unless told otherwise.
        env.setdefault("PUBLIC_URL", base)
        # The production server (agentops_site/server.py): gunicorn with uvicorn workers.
        # Warnings only, and no access log unless asked for: the login banner stays in view.
        web_env = {
            **env,
            "BIND": f"{host}:{port}",
            "WEB_CONCURRENCY": str(workers),
            "ACCESS_LOG": os.environ.get("ACCESS_LOG", ""),
        }
        web = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                "python:agentops_site.gunicorn_conf",
                "--log-level",
                "warning",
                "agentops_site.asgi:application",
            ],
            env=web_env,
        )
        celery = [sys.executable, "-m", "celery", "-A", "agentops_site", "--quiet"]
        worker = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [*celery, "worker", "--loglevel", "WARNING", "--concurrency", "2"], env=env
        )
        beat = subprocess.Popen(  # noqa: S603
            [*celery, "beat", "--loglevel", "WARNING"], env=env
        )
        children = [web, worker, beat]
        # Not among `children`: the console works without it, so its exit stops nothing.
        grpc_receiver = self._start_grpc(host, grpc_port, env)
        stop = threading.Event()

        def shutdown(*_):
            stop.set()

        signal.signal(signal.SIGTERM, shutdown)
        signal.signal(signal.SIGINT, shutdown)

        if not self._wait_until_up(f"{base}/healthz", web):
            self.stderr.write("The web server did not start; see its output above.")
            for child in children:
                child.terminate()
            sys.exit(1)

        self.stdout.write(
            self.style.SUCCESS(
                "\nAgentOps Console is running.\n"
                f"  Open      {base}/\n"
                f"  Log in    {username} / {password}\n"
                f"  Admin     {base}/admin/\n"
                f"  OTLP      {base}/v1/traces\n"
                f"  OTLP/gRPC {f'{host}:{grpc_port}' if grpc_receiver else 'off'}\n"
                f"  Demo key  {key}\n"
                f"  Worker    Celery worker and beat on {settings.CELERY_BROKER_URL.split('@')[-1]}"
                " (rollups, budgets, alerts)\n"
                "  Point an agent at it:\n"
                f"    export OTEL_EXPORTER_OTLP_TRACES_ENDPOINT={base}/v1/traces\n"
                f"    export OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer%20{key}\n"
                "  Ctrl-C stops everything.\n"
            )
        )
        if not no_demo:
            threading.Thread(
                target=self._send_demo,
                kwargs={
                    "base": base,
                    "key": key,
                    "login": (username, password),
                    "history": history,
                    "every": every,
                    "stop": stop,
                },
                daemon=True,
            ).start()

        try:
            while not stop.is_set():
                if any(child.poll() is not None for child in children):
                    self.stderr.write("A child process exited; stopping.")
                    break
                if grpc_receiver is not None and grpc_receiver.poll() is not None:
                    self.stderr.write(
                        f"The OTLP/gRPC receiver exited (status {grpc_receiver.returncode}); "
                        "going on without it (OTLP/HTTP still works)."
                    )
                    grpc_receiver = None
                stop.wait(0.5)
        finally:
            if grpc_receiver is not None:
                children.append(grpc_receiver)
            for child in children:
                if child.poll() is None:
                    child.terminate()
            for child in children:
                try:
                    child.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    child.kill()

    # ---------------------------------------------------------------- set-up

    def _start_grpc(self, host: str, port: int, env: dict):
        """`manage.py otlp_grpc` in its own process, or None (port 0, or the port taken:
        by another console or a local OpenTelemetry Collector, most likely)."""
        if port == 0:
            return None
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                self.stderr.write(
                    f"Port {port} is busy ({exc.strerror}): no OTLP/gRPC receiver this time; "
                    "OTLP/HTTP works. Free the port or choose another with --grpc-port."
                )
                return None
        manage = Path(settings.BASE_DIR) / "manage.py"
        bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        return subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [sys.executable, str(manage), "otlp_grpc", "--bind", bind], env=env
        )

    def _var(self, name: str) -> Path:
        path = Path(settings.VAR_DIR) / name
        path.parent.mkdir(exist_ok=True)
        return path

    def _demo_login(self) -> tuple[str, str]:
        """A staff login for the demo, its password kept in var/ (a private, ignored folder)."""
        User = get_user_model()
        username = "demo"
        pw_file = self._var("demo-password")
        user = User.objects.filter(username=username).first()
        if (
            user is None
            or not pw_file.exists()
            or not user.check_password(pw_file.read_text().strip())
        ):
            password = secrets.token_urlsafe(12)
            if user is None:
                user = User.objects.create_superuser(username, "demo@example.com", password)
            else:
                user.set_password(password)
                user.save(update_fields=["password"])
            pw_file.write_text(password)
            pw_file.chmod(0o600)
        return username, pw_file.read_text().strip()

    def _demo_key(self) -> str:
        project = Project.objects.filter(slug="demo").first()
        if project is None:
            project = project_create(slug="demo", name="Demo agents")
        user = get_user_model().objects.get(username="demo")
        membership_set(project=project, user=user, role=Membership.Role.ADMIN)
        demo_budgets_ensure(project=project)
        demo_declarations_ensure(project=project)
        demo_controls_ensure(project=project)
        key_file = self._var("demo-ingest-key")
        if key_file.exists():
            secret = key_file.read_text().strip()
            if IngestKey.objects.filter(
                key_hash=key_hash(secret), project=project, revoked_at__isnull=True
            ).exists():
                return secret
        secret = ingest_key_create(project=project, name="demo traffic").secret
        key_file.write_text(secret)
        key_file.chmod(0o600)
        return secret

    def _wait_until_up(self, url: str, process, timeout: float = 120) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
                    if response.status == 200:
                        return True
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.3)
        return False

    def _send_demo(self, *, base, key, login, history, every, stop) -> None:
        from traces.demo import DemoTraffic, history_starts, live_slot_is_governed

        demo = DemoTraffic(endpoint=f"{base}/v1/traces", key=key)
        # History: one run per live slot back from now, oldest first.
        starts = history_starts(now_ns=time.time_ns(), runs=history, every=every)
        for i, start_ns in enumerate(starts, 1):
            if stop.is_set():
                break
            demo.run(start_ns=start_ns)
            if i % 100 == 0:
                demo.flush()  # the exporter's queue holds a couple of thousand spans
        demo.flush()
        self.stdout.write(f"Sent {history} demo runs of history through the OTLP exporter.")
        governed = None if stop.is_set() else self._governed_demo(base=base, key=key)
        if not stop.is_set():
            self.stdout.write(
                self.style.SUCCESS(
                    f"Demo history sent; log in at {base}/ as {login[0]} / {login[1]}"
                )
            )
        slot = 0
        # Live: one run per slot, now and then a governed one instead of a plain one.
        while every > 0 and not stop.wait(every):
            if governed is not None and live_slot_is_governed(slot):
                self._governed_run(governed.run)
            else:
                demo.run()
                demo.flush()
            slot += 1
        demo.shutdown()
        if governed is not None:
            governed.shutdown()

    def _governed_demo(self, *, base, key):
        """The SDK-driven agents, after one run of each scenario; None without the SDK."""
        try:
            from controls.demo_agent import GovernedDemo
        except ImportError as exc:
            self.stderr.write(
                f"No governed demo agents ({exc}): install the SDK with "
                "`.venv/bin/pip install -e ./sdk` (python3 dev.py up does)."
            )
            return None
        governed = GovernedDemo(base_url=base, key=key)
        outcomes = self._governed_run(governed.tour) or []
        summary = ", ".join(f"{o.scenario}: {o.outcome}" for o in outcomes)
        self.stdout.write(
            f"Sent {len(outcomes)} governed runs through the SDK (contracts, policy and "
            f"budget checks): {summary}."
        )
        return governed

    def _governed_run(self, run):
        # A failing governed run (the console refusing a request, say) must not end the demo.
        try:
            return run()
        except Exception as exc:  # reported; the demo goes on
            self.stderr.write(f"Governed demo run failed: {exc!r}")
            return None
