from django.apps import AppConfig


class RolloutsConfig(AppConfig):
    name = "rollouts"
    verbose_name = "Rollouts"

    def ready(self) -> None:
        # Run rollups are kept as long as the span rollups (ROLLUP_RETENTION_DAYS).
        from rollouts.models import RunRollup
        from traces.retention import register_rollup_scoped

        register_rollup_scoped(RunRollup, "day")
