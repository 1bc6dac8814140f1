from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "console"
    verbose_name = "Console"

    def ready(self) -> None:
        from console.readiness import envelopes_covering, readiness_checklists
        from controls.decision_memory import agreement_in_window
        from controls.readiness import readiness_budget_provider
        from rollouts.extensions import agent_checklist_provider, shadow_agreement_provider

        readiness_budget_provider(envelopes_covering)
        agent_checklist_provider(readiness_checklists)
        shadow_agreement_provider(agreement_in_window)
