"""Production controls. Tool contracts: the versioned registry of what a tool accepts and
returns, per project.

A contract is identified by (project, name, version). Its schemas are JSON Schema Draft
2020-12, checked on every write by `controls.services.contract_clean`; a model's `save()`
does not validate, so writes go through the services (or the admin form, which calls
the same function).
"""

from __future__ import annotations

from django.db import models

from traces.models import Project


class ToolContract(models.Model):
    class Risk(models.TextChoices):
        LOW = "low", "Low"
        MEDIUM = "medium", "Medium"
        HIGH = "high", "High"
        CRITICAL = "critical", "Critical"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        DEPRECATED = "deprecated", "Deprecated"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="tool_contracts")
    name = models.CharField(max_length=200, help_text="The tool's name, as on its spans")
    version = models.CharField(max_length=64, help_text='A version string, e.g. "1.2.0"')
    arguments_schema = models.JSONField(
        default=dict, blank=True, help_text="JSON Schema (Draft 2020-12) of the arguments"
    )
    result_schema = models.JSONField(
        default=dict, blank=True, help_text="JSON Schema (Draft 2020-12) of the result"
    )
    side_effects = models.BooleanField(default=False, help_text="Changes something outside")
    requires_idempotency_key = models.BooleanField(default=False)
    risk = models.CharField(max_length=16, choices=Risk.choices, default=Risk.LOW)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "name", "-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "name", "version"], name="toolcontract_unique_version"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.version}"
