from django.apps import AppConfig
from django.core import checks


class TracesConfig(AppConfig):
    name = "traces"
    verbose_name = "Traces"

    def ready(self):
        from traces import retention, timezones  # noqa: F401  (timezones: remembers the zone)

        checks.register(retention.check_rollup_retention)
        checks.register(retention.check_project_retention, checks.Tags.database)

        from django.db.models.signals import post_delete

        from traces.models import Project
        from traces.spanstore import check_span_store_url, project_spans_delete

        checks.register(check_span_store_url)

        # However a project goes (the admin, a shell, a cascade), its spans in an external
        # span store go with it; its relational rows go by the database's cascade.
        post_delete.connect(project_spans_delete, sender=Project, dispatch_uid="project-spans")
