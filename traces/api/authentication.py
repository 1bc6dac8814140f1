from django.db import InterfaceError, OperationalError
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from traces.services import ingest_key_authenticate


class KeyPrincipal:
    """Who a request authenticated by an ingest key is: that key's project, nothing else."""

    is_authenticated = True
    is_active = True
    is_staff = False
    is_superuser = False
    is_anonymous = False

    def __init__(self, *, key_id: int, project_id: int):
        self.key_id = key_id
        self.project_id = project_id
        self.pk = None

    def __str__(self) -> str:
        return f"ingest key {self.key_id}"


class IngestKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <key>` or `X-Api-Key: <key>`, scoped to the key's project."""

    def authenticate(self, request):
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        secret = value.strip() if scheme.lower() == "bearer" else ""
        secret = secret or request.headers.get("X-Api-Key", "").strip()
        if not secret:
            return None
        try:
            match = ingest_key_authenticate(secret=secret)
        except (OperationalError, InterfaceError):
            raise exceptions.APIException("The database is unavailable.") from None
        if match is None:
            raise exceptions.AuthenticationFailed("Unknown or revoked key.")
        return KeyPrincipal(key_id=match.key_id, project_id=match.project_id), match

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class IngestKeyScheme(OpenApiAuthenticationExtension):
    """Describes the project-key authentication in the OpenAPI schema."""

    target_class = "traces.api.authentication.IngestKeyAuthentication"
    name = "projectKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A project's ingest key: reads that project only.",
        }
