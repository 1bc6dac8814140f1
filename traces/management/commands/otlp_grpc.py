import signal
import ssl
import threading
from pathlib import Path

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

        parser.add_argument(
            "--tls-cert",
            default=settings.OTLP_GRPC_TLS_CERT,
            help="PEM certificate chain: with --tls-key, speak TLS (default: OTLP_GRPC_TLS_CERT)",
        )
        parser.add_argument(
            "--tls-key",
            default=settings.OTLP_GRPC_TLS_KEY,
            help="PEM private key of --tls-cert (default: OTLP_GRPC_TLS_KEY)",
        )

    def handle(self, *args, bind, workers, tls_cert, tls_key, **options):
        if workers < 1:
            raise CommandError("--workers must be at least 1.")
        tls = _tls(tls_cert, tls_key)
        try:
            server, port, executor = server_create(bind=bind, workers=workers, tls=tls)
        except RuntimeError as exc:
            self.stderr.write(
                f"Cannot listen for OTLP/gRPC on {bind}: the address is in use or not "
                f"available ({exc})."
            )
            raise SystemExit(EXIT_ADDRESS_IN_USE) from None
        host = bind.rsplit(":", 1)[0]
        scheme = "TLS" if tls else "plaintext"
        self.stdout.write(
            f"OTLP/gRPC receiver listening on {host}:{port} ({scheme}, {workers} workers)"
        )
        self.stdout.flush()

        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        while not stop.wait(1.0):
            pass
        server_stop(server, executor)
        self.stdout.write("OTLP/gRPC receiver stopped.")


def _tls(cert: str, key: str) -> tuple[bytes, bytes] | None:
    """(certificate chain, key) read from the PEM files, None for plaintext; a clear error
    for one without the other, a file that cannot be read or is not PEM."""
    if not cert and not key:
        return None
    if not (cert and key):
        raise CommandError("TLS needs both a certificate (--tls-cert) and its key (--tls-key).")
    pems = []
    for what, path in (("certificate", cert), ("key", key)):
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read the TLS {what} {path}: {exc.strerror}.") from None
        if b"-----BEGIN " not in data:
            raise CommandError(f"The TLS {what} {path} is not a PEM file.")
        pems.append(data)
    try:
        # gRPC says only "failed to bind" for a key that does not match its certificate
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        raise CommandError(
            f"The TLS certificate {cert} and key {key} do not make a usable pair: {exc}."
        ) from None
    return pems[0], pems[1]
