from django.apps import AppConfig


class TracesConfig(AppConfig):
    name = "traces"
    verbose_name = "Traces"

    def ready(self):
        from traces import timezones  # noqa: F401  (remembers the chosen zone at login)
