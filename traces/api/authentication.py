from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from traces.login_throttle import lockout_message, retry_after
from traces.models import Membership
from traces.selectors import project_list_for_user, project_role_for_user
from traces.services import ingest_key_authenticate
from traces.tokens import personal_token_authenticate


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
        # A database outage propagates: the outage middleware answers 503 + Retry-After.
        match = ingest_key_authenticate(secret=secret)
        if match is None:
            raise exceptions.AuthenticationFailed("Unknown or revoked key.")
        return KeyPrincipal(key_id=match.key_id, project_id=match.project_id), match

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class PersonalTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Token <token>`: a person's token, acting as that person."""

    def authenticate(self, request):
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "token":
            return None
        secret = value.strip()
        if not secret or " " in secret:
            raise exceptions.AuthenticationFailed("Invalid token header.")
        token = personal_token_authenticate(secret=secret)
        if token is None:
            raise exceptions.AuthenticationFailed("Unknown or revoked token.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        return token.user, token

    def authenticate_header(self, request):
        return "Token"


class LockoutBasicAuthentication(authentication.BasicAuthentication):
    """HTTP Basic, counted by the failed-login lockout like the login form.

    DRF hands authenticate() its own request object, so the lockout flag that axes sets
    never reaches the middleware that answers the form: it is answered here, as 429 with
    Retry-After.
    """

    def authenticate_credentials(self, userid, password, request=None):
        # PostgreSQL text cannot hold NUL: the user lookup would fail, not answer 401.
        if "\0" in userid or "\0" in password:
            raise exceptions.AuthenticationFailed("Invalid username/password.")
        try:
            return super().authenticate_credentials(userid, password, request)
        except exceptions.AuthenticationFailed:
            if request is not None and getattr(request, "axes_locked_out", False):
                credentials = getattr(request, "axes_credentials", None) or {"username": userid}
                seconds = retry_after(request, credentials)
                locked = exceptions.Throttled(detail=lockout_message(seconds))
                locked.wait = seconds  # becomes the Retry-After header
                raise locked from None
            raise


class PersonalTokenScheme(OpenApiAuthenticationExtension):
    target_class = "traces.api.authentication.PersonalTokenAuthentication"
    name = "personalToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token <token>`: a personal token, acting as its user.",
        }


class LockoutBasicScheme(OpenApiAuthenticationExtension):
    target_class = "traces.api.authentication.LockoutBasicAuthentication"
    name = "basicAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "basic"}


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


def writable_project_id(request, slug: str | None, *, what: str) -> int:
    """The project a write goes to: a project key's own (naming another is a 403), else
    the named project of the user's, where only its admins write `what` (a 403)."""
    user = request.user
    if isinstance(user, KeyPrincipal):
        if slug and not project_list_for_user(user=user).filter(slug=slug).exists():
            raise exceptions.PermissionDenied("This key writes to its own project only.")
        return user.project_id
    if not slug:
        raise exceptions.ValidationError({"project": ["Give the project's slug."]})
    project = project_list_for_user(user=user).filter(slug=slug).first()
    if project is None:
        raise exceptions.NotFound("No such project.")
    if project_role_for_user(user=user, project=project) != Membership.Role.ADMIN:
        raise exceptions.PermissionDenied(f"Only the project's admins and keys write {what}.")
    return project.pk
