"""Admin of personal API tokens: created here or by `manage.py createtoken`, shown once."""

from django.contrib import admin, messages
from django.utils.html import format_html

from traces.models import PersonalToken
from traces.tokens import personal_token_create, personal_token_revoke


@admin.register(PersonalToken)
class PersonalTokenAdmin(admin.ModelAdmin):
    list_display = ["prefix_display", "name", "user", "created_at", "last_used_at", "state"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix", "user__username"]
    actions = ["revoke"]
    readonly_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]
    autocomplete_fields = ["user"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["user", "name"]
        return ["user", "name", *self.readonly_fields]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else ["user", *self.readonly_fields]

    @admin.display(description="Token")
    def prefix_display(self, obj):
        return f"{obj.prefix}…"

    @admin.display(description="State")
    def state(self, obj):
        return "revoked" if obj.revoked_at else "active"

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=["name"])
            return
        new = personal_token_create(user=obj.user, name=obj.name)
        obj.pk = new.token.pk
        obj.prefix = new.token.prefix
        self.message_user(
            request,
            format_html(
                "New token for {}: <code>{}</code> — copy it now, it is not shown again. "
                "Send it as <code>Authorization: Token &lt;token&gt;</code>.",
                obj.user,
                new.secret,
            ),
            messages.WARNING,
        )

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset):
        for token in queryset.filter(revoked_at__isnull=True):
            personal_token_revoke(token=token)
        self.message_user(request, "Revoked. Requests with these tokens now get 401.")
