from django.contrib import admin

from rollouts.forms import KpiForm, PromotionCriteriaForm
from rollouts.models import AgentPhase, Kpi, PromotionCriteria


@admin.register(Kpi)
class KpiAdmin(admin.ModelAdmin):
    form = KpiForm  # the rules of the console's KPI page too
    list_display = ["name", "label", "project", "kind", "unit", "higher_is_better", "baseline"]
    list_filter = ["project", "kind", "baseline"]
    search_fields = ["name", "label"]


@admin.register(AgentPhase)
class AgentPhaseAdmin(admin.ModelAdmin):
    """Phase changes are the audit trail: added (recording who), never edited, and deleted
    only by a superuser (deleting a project deletes its trail); a mistaken change is
    undone by another change, which is recorded too."""

    list_display = ["agent", "phase", "since", "project", "set_by", "created_at", "note"]
    list_filter = ["project", "phase"]
    search_fields = ["agent", "set_by"]
    date_hierarchy = "since"
    readonly_fields = ["set_by", "created_at"]

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser

    def save_model(self, request, obj, form, change) -> None:
        if not change:
            obj.set_by = request.user.get_username()[:150]
        super().save_model(request, obj, form, change)


@admin.register(PromotionCriteria)
class PromotionCriteriaAdmin(admin.ModelAdmin):
    form = PromotionCriteriaForm  # the rules of the console's criteria page too
    list_display = [
        "agent",
        "from_phase",
        "to_phase",
        "min_runs",
        "max_exception_rate",
        "max_intervention_rate",
        "require_no_kpi_regression",
        "min_shadow_agreement",
        "window_days",
        "project",
    ]
    list_filter = ["project", "from_phase"]
    search_fields = ["agent"]
