"""Who may do what through the budgets API.

Reads are for anyone authenticated; what they see is scoped by the querysets
(`project_list_for_user`), so another project's objects are 404. Writes to envelopes
and channels are for staff users. A project (ingest) key reads its own project and
never writes.
"""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

KEY_WRITE_MESSAGE = (
    "A project key may read its project's budgets, alerts and cost, never change them."
)
STAFF_MESSAGE = "Only staff users may change budgets and channels."


def is_project_key(user) -> bool:
    return getattr(user, "key_id", None) is not None


def _authenticated(request) -> bool:
    return bool(request.user and request.user.is_authenticated)


class StaffWritesMembersRead(BasePermission):
    """Envelopes: members (and their project's key) read, staff users write."""

    message = STAFF_MESSAGE

    def has_permission(self, request, view) -> bool:
        if not _authenticated(request):
            return False
        if request.method in SAFE_METHODS:
            return True
        if is_project_key(request.user):
            self.message = KEY_WRITE_MESSAGE
            return False
        return bool(request.user.is_staff)


class StaffOnly(BasePermission):
    """Channels hold addresses and secrets: staff users only, reads included."""

    message = "Only staff users may see and change channels."

    def has_permission(self, request, view) -> bool:
        return (
            _authenticated(request)
            and not is_project_key(request.user)
            and bool(request.user.is_staff)
        )


class PeopleWrite(BasePermission):
    """Acknowledging an alert: any member of its project (scoped by the queryset), not a key."""

    message = KEY_WRITE_MESSAGE

    def has_permission(self, request, view) -> bool:
        if not _authenticated(request):
            return False
        return request.method in SAFE_METHODS or not is_project_key(request.user)


class ProjectKeyOnly(BasePermission):
    """The runtime check answers for one project: the one whose key asks."""

    message = "This endpoint takes a project key (Authorization: Bearer <key>)."

    def has_permission(self, request, view) -> bool:
        return _authenticated(request) and is_project_key(request.user)
