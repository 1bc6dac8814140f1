import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from traces.otlp_grpc import server_create, server_stop

# `manage.py up` recognises a busy port by this exit status.
EXIT_ADDRESS_IN_USE = 3


class Command(BaseCommand):
    help = (
        "Receive traces over OTLP/gRPC (TraceService/Export), in this process, until "
        "stopped (SIGTERM or Ctrl-C finishes the exports under way)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--bind",
            default=settings.OTLP_GRPC_BIND,
            help="host:port to listen on (default: OTLP_GRPC_BIND, %(default)s)",
        )
        parser.add_argument(
            "--workers",
            type=int,
            default=settings.INGEST_CONCURRENCY,
            help="exports decoded and stored at once, each on its own thread and database "
            "connection (default: INGEST_CONCURRENCY, %(default)s)",
        )

    def handle(self, *args, bind, workers, **options):
        if workers < 1:
            raise CommandError("--workers must be at least 1.")
        try:
            server, port, executor = server_create(bind=bind, workers=workers)
        except RuntimeError as exc:
            self.stderr.write(
                f"Cannot listen for OTLP/gRPC on {bind}: the address is in use or not "
                f"available ({exc})."
            )
            raise SystemExit(EXIT_ADDRESS_IN_USE) from None
        host = bind.rsplit(":", 1)[0]
        self.stdout.write(f"OTLP/gRPC receiver listening on {host}:{port} ({workers} workers)")
        self.stdout.flush()

        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        while not stop.wait(1.0):
            pass
        server_stop(server, executor)
        self.stdout.write("OTLP/gRPC receiver stopped.")
