from django.contrib import admin

from rollouts.models import AgentPhase, Kpi, PromotionCriteria


@admin.register(Kpi)
class KpiAdmin(admin.ModelAdmin):
    list_display = ["name", "label", "project", "kind", "unit", "higher_is_better", "baseline"]
    list_filter = ["project", "kind", "baseline"]
    search_fields = ["name", "label"]


@admin.register(AgentPhase)
class AgentPhaseAdmin(admin.ModelAdmin):
    list_display = ["agent", "phase", "since", "project", "note"]
    list_filter = ["project", "phase"]
    search_fields = ["agent"]
    date_hierarchy = "since"


@admin.register(PromotionCriteria)
class PromotionCriteriaAdmin(admin.ModelAdmin):
    list_display = [
        "agent",
        "from_phase",
        "to_phase",
        "min_runs",
        "max_exception_rate",
        "max_intervention_rate",
        "require_no_kpi_regression",
        "window_days",
        "project",
    ]
    list_filter = ["project", "from_phase"]
    search_fields = ["agent"]
