"""The forms of KPIs and promotion criteria: the one set of rules the admin and the
console's setup pages (`rollouts.setup_pages`) both validate with.

Given a `project`, a form belongs to that project: the field goes, the instance is
attached to it, and the (project, …) uniqueness is still checked, so a duplicate is a
field error rather than an IntegrityError.
"""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from rollouts.models import Kpi, PromotionCriteria
from traces.models import AUTONOMY_PHASES, Project

PHASE_RANK = {p.value: i for i, p in enumerate(AUTONOMY_PHASES)}


class _ProjectForm(forms.ModelForm):
    def __init__(self, *args, project: Project | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.project = project
        if project is not None:
            self.fields.pop("project", None)
            self.instance.project = project

    def _get_validation_exclusions(self):
        exclude = super()._get_validation_exclusions()
        if self.project is not None:
            exclude.discard("project")  # set on the instance: uniqueness is checked with it
        return exclude


class KpiForm(_ProjectForm):
    class Meta:
        model = Kpi
        fields = [
            "project",
            "name",
            "label",
            "unit",
            "kind",
            "higher_is_better",
            "baseline",
            "description",
        ]
        labels = {"higher_is_better": "Higher is better"}
        help_texts = {
            "name": "As agents send it: agentops.kpi.<name> (letters, digits, - and _).",
            "baseline": "What the lift of a version is measured against.",
        }


class PromotionCriteriaForm(_ProjectForm):
    class Meta:
        model = PromotionCriteria
        fields = [
            "project",
            "agent",
            "from_phase",
            "to_phase",
            "window_days",
            "min_runs",
            "max_exception_rate",
            "max_intervention_rate",
            "min_shadow_agreement",
            "require_no_kpi_regression",
            "require_readiness",
        ]
        labels = {
            "from_phase": "From phase",
            "to_phase": "To phase",
            "window_days": "Window (days)",
            "min_runs": "Minimum runs",
            "max_exception_rate": "Max exception rate (%)",
            "max_intervention_rate": "Max intervention rate (%)",
            "min_shadow_agreement": "Min shadow agreement (%)",
            "require_no_kpi_regression": "No KPI may regress",
            "require_readiness": "Readiness items to be met",
        }

    def clean_agent(self):
        agent = self.cleaned_data["agent"].strip()
        if not agent:
            raise ValidationError("Name the agent.")
        return agent

    def clean_window_days(self):
        days = self.cleaned_data["window_days"]
        if days is not None and not 1 <= days <= 365:
            raise ValidationError("Between 1 and 365 days.")
        return days

    def clean_require_readiness(self):
        value = self.cleaned_data.get("require_readiness") or []
        if not isinstance(value, list) or not all(isinstance(k, str) and k.strip() for k in value):
            raise ValidationError('A list of readiness item keys, e.g. ["contracts", "budget"].')
        return list(dict.fromkeys(k.strip() for k in value))

    def clean(self):
        data = super().clean()
        for name in ("max_exception_rate", "max_intervention_rate"):
            value = data.get(name)
            if value is not None and not 0 <= value <= 100:
                self.add_error(name, "A percentage: 0 to 100.")
        source, target = data.get("from_phase"), data.get("to_phase")
        if (
            source in PHASE_RANK
            and target in PHASE_RANK
            and PHASE_RANK[target] <= PHASE_RANK[source]
        ):
            self.add_error("to_phase", f"A promotion goes to a later phase than {source}.")
        return data
