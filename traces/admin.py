from django.conf import settings
from django.contrib import admin, messages
from django.utils import timezone
from django.utils.html import format_html

from traces import admin_tokens, retention  # noqa: F401  (admin_tokens: personal API tokens)
from traces.models import (
    IngestBatch,
    IngestKey,
    Membership,
    ModelPriceOverride,
    Outcome,
    Project,
    Span,
    Trace,
)
from traces.pricing import price_lookup
from traces.services import ingest_key_create, ingest_key_revoke
from traces.spanstore import span_store


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ["user"]


class IngestKeyInline(admin.TabularInline):
    model = IngestKey
    extra = 0
    fields = ["name", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False  # keys are created from the Ingest keys page, which shows the secret once


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "retention", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline, IngestKeyInline]

    @admin.display(description="Retention", ordering="retention_days")
    def retention(self, obj: Project) -> str:
        if obj.retention_days:
            return f"{obj.retention_days} days"
        return f"{retention.default_retention_days()} days (default)"

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        field = form.base_fields.get("retention_days")
        if field is not None:  # the setting's value, not only its name
            field.help_text = (
                "Days of spans and traces kept (whole UTC days before today). Blank: "
                f"{retention.default_retention_days()} days (SPAN_RETENTION_DAYS). Rollups, "
                f"which budgets and KPI history read, are kept "
                f"{retention.rollup_retention_days()} days (ROLLUP_RETENTION_DAYS)."
            )
        return form


@admin.register(IngestKey)
class IngestKeyAdmin(admin.ModelAdmin):
    list_display = ["prefix_display", "name", "project", "created_at", "last_used_at", "state"]
    list_filter = ["project", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix", "project__slug"]
    actions = ["revoke"]
    readonly_fields = ["prefix", "created_at", "created_by", "last_used_at", "revoked_at"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["project", "name"]
        return ["project", "name", *self.readonly_fields]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["project", *self.readonly_fields]

    @admin.display(description="Key")
    def prefix_display(self, obj):
        return f"{obj.prefix}…"

    @admin.display(description="State")
    def state(self, obj):
        return "revoked" if obj.revoked_at else "active"

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=["name"])
            return
        new = ingest_key_create(project=obj.project, name=obj.name, created_by=request.user)
        obj.pk = new.key.pk
        obj.prefix = new.key.prefix
        self.message_user(
            request,
            format_html(
                "New ingest key for {}: <code>{}</code> — copy it now, it is not shown again. "
                "Exporters send it as <code>Authorization: Bearer &lt;key&gt;</code>.",
                obj.project,
                new.secret,
            ),
            messages.WARNING,
        )

    @admin.action(description="Revoke selected keys")
    def revoke(self, request, queryset):
        for key in queryset.filter(revoked_at__isnull=True):
            ingest_key_revoke(key=key)
        self.message_user(
            request,
            "Revoked. Exporters using these keys get 401 within "
            f"{settings.INGEST_KEY_CACHE_SECONDS} s.",
        )


@admin.register(ModelPriceOverride)
class ModelPriceOverrideAdmin(admin.ModelAdmin):
    list_display = [
        "model",
        "provider",
        "effective_from",
        "input_per_mtok",
        "output_per_mtok",
        "cached_input_per_mtok",
        "packaged_price",
    ]
    search_fields = ["model", "provider", "note"]
    list_filter = ["provider"]

    @admin.display(description="Packaged price data ($/M tokens)")
    def packaged_price(self, obj):
        info = price_lookup(provider=obj.provider, model=obj.model)
        if info is None:
            return "not in price data"
        cached = (
            f", cached {info.cached_input_per_mtok}"
            if info.cached_input_per_mtok is not None
            else ""
        )
        return f"{info.model_id}: in {info.input_per_mtok}, out {info.output_per_mtok}{cached}"


@admin.register(Trace)
class TraceAdmin(admin.ModelAdmin):
    list_display = ["trace_id", "name", "agent", "project", "started_at", "status", "cost_usd"]
    list_filter = ["project", "status"]
    search_fields = ["trace_id", "name", "agent"]
    date_hierarchy = "started_at"
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Span)
class SpanAdmin(admin.ModelAdmin):
    list_display = ["span_id", "name", "step", "model", "trace_id", "started_at", "cost_source"]
    list_filter = ["project", "step", "cost_source"]
    search_fields = ["trace_id", "span_id", "name", "model", "tool_name"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        store = span_store()
        if store.kind != "relational":
            # This list reads traces_span; with another span store it holds only the
            # spans written before the switch.
            self.message_user(
                request,
                f"Spans are stored in ClickHouse ({store.describe()}), not in this table: "
                "it lists only spans written before SPAN_STORE_URL was set. A trace's spans "
                "are at /api/traces/<trace id>/.",
                messages.WARNING,
            )
        return super().changelist_view(request, extra_context)


@admin.register(Outcome)
class OutcomeAdmin(admin.ModelAdmin):
    list_display = ["trace_id", "kind", "name", "value", "source", "recorded_at", "project"]
    list_filter = ["project", "kind", "source", "name"]
    search_fields = ["trace_id", "name"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class QuarantinedFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "quarantined"

    def lookups(self, request, model_admin):
        return [("yes", "Quarantined"), ("no", "Pending")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(failed_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(failed_at__isnull=True)
        return queryset


@admin.register(IngestBatch)
class IngestBatchAdmin(admin.ModelAdmin):
    """Batches waiting for the rollup; quarantined ones say why the fold failed."""

    list_display = [
        "id",
        "project",
        "received_at",
        "span_count",
        "attempts",
        "failed_at",
        "retry_at",
        "short_error",
    ]
    list_filter = [QuarantinedFilter, "project"]
    search_fields = ["error"]
    readonly_fields = [
        "project",
        "received_at",
        "span_count",
        "attempts",
        "error",
        "failed_at",
        "retry_at",
    ]
    actions = ["retry_now"]

    def has_add_permission(self, request):
        return False

    @admin.display(description="Error")
    def short_error(self, obj):
        return obj.error[:120]

    @admin.action(description="Retry selected batches at the next rollup")
    def retry_now(self, request, queryset):
        n = queryset.filter(failed_at__isnull=False).update(retry_at=timezone.now())
        self.message_user(request, f"{n} batch(es) will be folded again at the next rollup.")
