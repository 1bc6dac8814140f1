from django.core.management.base import BaseCommand, CommandError

from traces.spanstore import span_store


class Command(BaseCommand):
    help = (
        "Show where spans are stored (SPAN_STORE_URL) and the store's size. --init creates "
        "the ClickHouse database and table if missing (safe to repeat); --check fails "
        "unless the store answers."
    )

    def add_arguments(self, parser):
        parser.add_argument("--init", action="store_true", help="Create the schema if missing")
        parser.add_argument("--check", action="store_true", help="Fail unless the store answers")

    def handle(self, *args, init=False, check=False, **options):
        try:
            store = span_store()
            if init:
                store.ensure_schema()
            spans = store.count()
        except CommandError:
            raise
        except Exception as exc:  # any driver or server error: say it, exit non-zero
            raise CommandError(f"span store unavailable: {type(exc).__name__}: {exc}") from exc
        self.stdout.write(f"Span store: {store.describe()}")
        self.stdout.write(f"Spans: {spans}")
        if store.kind == "clickhouse":
            stats = store.table_stats()
            per_span = stats["bytes_on_disk"] / stats["rows"] if stats["rows"] else 0
            self.stdout.write(
                f"Stored copies (before merges): {stats['rows']} in {stats['parts']} parts, "
                f"{stats['bytes_on_disk']:,} bytes on disk "
                f"({stats['bytes_uncompressed']:,} uncompressed), {per_span:.0f} bytes per span"
            )
        if check:
            self.stdout.write(self.style.SUCCESS("OK"))
