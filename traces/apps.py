from django.apps import AppConfig
from django.core import checks


class TracesConfig(AppConfig):
    name = "traces"
    verbose_name = "Traces"

    def ready(self):
        from traces import retention, timezones  # noqa: F401  (timezones: remembers the zone)

        checks.register(retention.check_rollup_retention)
        checks.register(retention.check_project_retention, checks.Tags.database)
