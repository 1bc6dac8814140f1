"""Failed-login lockout on top of django-axes: two limits, one answer.

Axes counts failed logins wherever Django's authenticate() runs (the login form, the
admin, HTTP Basic on the API). Axes has one failure limit; the console has one per
lockout group (settings.LOGIN_LOCKOUTS: per username + address, per address), so the
handler below decides when a group is over its own limit. A locked-out client gets 429
with Retry-After and a message naming the minutes left: HTML for the pages, JSON for the
API.
"""

from __future__ import annotations

import ipaddress
import math
from datetime import datetime

from axes.handlers.database import AxesDatabaseHandler
from django.conf import settings
from django.db.models import Max, Sum
from django.http import JsonResponse
from django.shortcuts import render
from django.utils import timezone

# AccessAttempt.username is 255 characters; longer names (HTTP Basic has no limit) are
# cut so that counting a failure never fails itself.
USERNAME_MAX = 255


class LoginThrottleHandler(AxesDatabaseHandler):
    """Axes' database handler with a limit per lockout group."""

    def _locked_groups(self, request, credentials):
        limits = [limit for _params, limit in settings.LOGIN_LOCKOUTS]
        groups = self.get_user_attempts(request, credentials)  # in AXES_LOCKOUT_PARAMETERS order
        return [
            attempts
            for attempts, limit in zip(groups, limits, strict=True)
            if (attempts.aggregate(n=Sum("failures_since_start"))["n"] or 0) >= limit
        ]

    def is_locked(self, request, credentials=None) -> bool:
        return bool(settings.AXES_LOCK_OUT_AT_FAILURE and self._locked_groups(request, credentials))

    def user_login_failed(self, sender, credentials: dict, request=None, **kwargs):
        super().user_login_failed(sender, credentials, request, **kwargs)
        # The parent compares against AXES_FAILURE_LIMIT, the largest of the limits; the
        # failure that reaches a smaller one is answered as a lockout too.
        locked = request is not None and not request.axes_locked_out
        if locked and self.is_locked(request, credentials):
            request.axes_locked_out = True
            request.axes_credentials = credentials

    def retry_after(self, request, credentials=None) -> int:
        """Seconds until every group that locks this client has cooled off."""
        latest: datetime | None = None
        for attempts in self._locked_groups(request, credentials):
            t = attempts.aggregate(t=Max("attempt_time"))["t"]
            if t is not None and (latest is None or t > latest):
                latest = t
        if latest is None:
            return 1
        left = (latest + settings.AXES_COOLOFF_TIME - timezone.now()).total_seconds()
        return max(1, math.ceil(left))


def retry_after(request, credentials=None) -> int:
    return LoginThrottleHandler().retry_after(request, credentials)


def lockout_message(seconds: int) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    unit = "minute" if minutes == 1 else "minutes"
    return f"Too many failed logins; try again in {minutes} {unit}."


def lockout_response(request, original_response=None, credentials=None):
    """AXES_LOCKOUT_CALLABLE: 429 with Retry-After; JSON for API clients."""
    seconds = retry_after(request, credentials)
    message = lockout_message(seconds)
    wants_json = request.path.startswith("/api/") or "application/json" in request.headers.get(
        "Accept", ""
    )
    if wants_json:
        response = JsonResponse({"detail": message}, status=429)
    else:
        response = render(request, "registration/locked_out.html", {"message": message}, status=429)
    response["Retry-After"] = str(seconds)
    return response


def client_address(request) -> str | None:
    """AXES_CLIENT_IP_CALLABLE. Behind a TLS proxy every request comes from the proxy, so
    the address is the last one the proxy appended to X-Forwarded-For; a client can put
    anything before it, never after."""
    if settings.LOGIN_ADDRESS_FROM_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")[-1].strip()
        if _is_address(forwarded):
            return forwarded
    remote = request.META.get("REMOTE_ADDR", "")
    return remote if _is_address(remote) else None


def _is_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def client_username(request, credentials=None) -> str | None:
    """AXES_USERNAME_CALLABLE: the username tried, cut to what the attempt table holds."""
    field = settings.AXES_USERNAME_FORM_FIELD
    if credentials:
        name = credentials.get(field)
    else:
        name = request.POST.get(field) if request.method == "POST" else None
    if not name:
        return None
    return str(name).replace("\0", "")[:USERNAME_MAX]
