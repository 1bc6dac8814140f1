from django.apps import AppConfig


class ControlsConfig(AppConfig):
    name = "controls"
    verbose_name = "Controls"

    def ready(self) -> None:
        from controls.badges import approval_badges, contract_badges
        from traces.annotations import span_badge_provider

        span_badge_provider(contract_badges)
        span_badge_provider(approval_badges)
        # Retention (traces/retention.py): contract checks and findings are derived from
        # spans and go with them (contract checks, one per tool span, partitioned by day
        # like spans on PostgreSQL); approvals, policy decisions, review items and
        # decision memory are the audit trail and are kept.
        from controls.models import ContractCheck, Finding
        from traces.retention import register_span_scoped

        register_span_scoped(ContractCheck, "span_started_at", per_span=True)
        register_span_scoped(Finding, "last_at")
