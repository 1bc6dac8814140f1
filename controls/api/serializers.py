"""Tool contract representations. Validation is `controls.services.contract_clean`'s,
re-raised as DRF field errors."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from controls.models import ToolContract
from controls.services import FIELDS, contract_clean
from traces.selectors import project_list_for_user


class ToolContractSerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="slug", queryset=ToolContract.objects.none())
    arguments_schema = serializers.JSONField(required=False)
    result_schema = serializers.JSONField(required=False)

    class Meta:
        model = ToolContract
        fields = ["id", "project", *FIELDS, "created_at"]
        read_only_fields = ["created_at"]
        # The (project, name, version) clash is answered by the view with a clear message.
        validators = []

    def get_fields(self):
        fields = super().get_fields()
        request = self.context.get("request")
        # Another project's slug reads as "does not exist", never "forbidden".
        if request is not None:
            fields["project"].queryset = project_list_for_user(user=request.user)
        return fields

    def validate(self, attrs):
        data = {k: v for k, v in attrs.items() if k in FIELDS}
        try:
            cleaned = contract_clean(data)
        except DjangoValidationError as exc:
            errors = exc.message_dict
            if "__all__" in errors:
                errors["non_field_errors"] = errors.pop("__all__")
            raise serializers.ValidationError(errors) from None
        return {**attrs, **cleaned}
