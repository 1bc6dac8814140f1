from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from controls.models import Approval, DecisionRecord, Finding, ReviewRule, ReviewSla, ToolContract
from controls.services import FIELDS, contract_clean


class ToolContractForm(forms.ModelForm):
    class Meta:
        model = ToolContract
        fields = ["project", *FIELDS]

    def clean(self):
        cleaned = super().clean()
        data = {k: cleaned[k] for k in FIELDS if k in cleaned}
        if len(data) == len(FIELDS):
            try:
                cleaned.update(contract_clean(data))
            except ValidationError as exc:
                # Keyed by field, so the admin shows each message beside its field.
                for fname, messages in exc.message_dict.items():
                    for message in messages:
                        self.add_error(None if fname == "__all__" else fname, message)
        return cleaned


@admin.register(ToolContract)
class ToolContractAdmin(admin.ModelAdmin):
    form = ToolContractForm
    list_display = [
        "name",
        "version",
        "project",
        "status",
        "risk",
        "side_effects",
        "requires_idempotency_key",
        "created_at",
    ]
    list_filter = ["project", "status", "risk", "side_effects"]
    search_fields = ["name", "version", "description"]
    readonly_fields = ["created_at"]


@admin.register(Finding)
class FindingAdmin(admin.ModelAdmin):
    """Read-only: findings are written by the detectors (`controls.findings`)."""

    list_display = ["kind", "project", "tool", "agent", "count", "cost_usd", "last_at"]
    list_filter = ["project", "kind"]
    search_fields = ["tool", "agent", "key", "fingerprint"]
    date_hierarchy = "last_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ReviewRuleForm(forms.ModelForm):
    class Meta:
        model = ReviewRule
        fields = [
            "project", "agent", "phase", "min_confidence", "risks", "on_escalation",
            "on_policy_escalate",
        ]  # fmt: skip

    def clean_min_confidence(self):
        value = self.cleaned_data["min_confidence"]
        if value is not None and not 0 <= value <= 1:
            raise ValidationError("A confidence is between 0 and 1.")
        return value

    def clean_risks(self):
        value = self.cleaned_data["risks"] or []
        known = ToolContract.Risk.values
        if not isinstance(value, list) or any(r not in known for r in value):
            raise ValidationError(f"A list of risk levels among {', '.join(known)}.")
        return value


@admin.register(ReviewRule)
class ReviewRuleAdmin(admin.ModelAdmin):
    """When runs go to the review queue on their own (controls/review.py)."""

    form = ReviewRuleForm
    list_display = ["project", "agent", "phase", "min_confidence", "risks", "on_escalation"]
    list_filter = ["project"]


@admin.register(ReviewSla)
class ReviewSlaAdmin(admin.ModelAdmin):
    list_display = ["project", "risk", "minutes"]
    list_filter = ["project"]


class ReadOnlyAdmin(admin.ModelAdmin):
    """Written by the runtime APIs and the workers only, so the audit trail holds: a person
    decides in the review queue (a compare-and-set), never by editing a row here. A
    superuser may delete."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Approval)
class ApprovalAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "project", "agent", "tool", "risk", "status", "decided_by"]
    list_filter = ["project", "status", "risk"]
    search_fields = ["public_id", "agent", "tool", "trace_id", "decided_by"]
    date_hierarchy = "created_at"


@admin.register(DecisionRecord)
class DecisionRecordAdmin(ReadOnlyAdmin):
    list_display = ["decided_at", "project", "agent", "agent_version", "action", "human_action"]
    list_filter = ["project", "phase"]
    search_fields = ["trace_id", "span_id", "agent", "action", "human_action"]
    date_hierarchy = "decided_at"
