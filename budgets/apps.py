from django.apps import AppConfig


class BudgetsConfig(AppConfig):
    name = "budgets"
    verbose_name = "Budgets"

    def ready(self):
        from budgets import receivers  # noqa: F401 - connects the rollup hook
