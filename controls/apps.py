from django.apps import AppConfig


class ControlsConfig(AppConfig):
    name = "controls"
    verbose_name = "Controls"

    def ready(self) -> None:
        from controls.badges import approval_badges, contract_badges
        from traces.annotations import span_badge_provider

        span_badge_provider(contract_badges)
        span_badge_provider(approval_badges)
