"""The time zone pages show times in, per request.

Storage is UTC. Each request shows times in one zone, the first of:
1. the zone the person chose (UserPreference.time_zone, kept in the session);
2. the browser's zone, which static/agentops/timezone.js puts in the `tz` cookie;
3. settings.TIME_ZONE.
Every value is checked against zoneinfo.available_timezones(); anything else is ignored.
The JSON API (/api/) keeps answering and parsing in UTC whatever the cookie says.
"""

from __future__ import annotations

from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

from django.conf import settings
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.utils import timezone

from traces.models import UserPreference

COOKIE = "tz"
SESSION_KEY = "time_zone"  # the chosen zone, "" when none; absent until first read
_SOURCE_ATTR = "time_zone_source"


@lru_cache(maxsize=1)
def zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def zone_valid(name: str) -> bool:
    return isinstance(name, str) and name in zone_names()


def zone_choices() -> list[str]:
    return sorted(zone_names())


def preference_time_zone(*, user) -> str:
    """The zone `user` chose, "" when none."""
    found = UserPreference.objects.filter(user=user).values_list("time_zone", flat=True).first()
    return found or ""


def preference_time_zone_set(*, user, time_zone: str) -> UserPreference:
    """Save `user`'s zone ("" to follow the browser). ValueError on an unknown zone."""
    if time_zone and not zone_valid(time_zone):
        raise ValueError(f"{time_zone!r} is not an IANA time zone (e.g. Europe/Paris, UTC).")
    pref, _ = UserPreference.objects.update_or_create(user=user, defaults={"time_zone": time_zone})
    return pref


@receiver(user_logged_in)
def _remember_on_login(sender, request, user, **kwargs):
    # Read once per login, so a page costs no query for it.
    if request is not None and hasattr(request, "session"):
        request.session[SESSION_KEY] = preference_time_zone(user=user)


def request_time_zone(request) -> tuple[str, str]:
    """(zone name, source): source is "chosen", "browser" or "default"."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        chosen = request.session.get(SESSION_KEY)
        if chosen is None:  # a session from before the preference existed
            chosen = request.session[SESSION_KEY] = preference_time_zone(user=user)
        if chosen and zone_valid(chosen):
            return chosen, "chosen"
    cookie = request.COOKIES.get(COOKIE, "")
    if zone_valid(cookie):
        return cookie, "browser"
    return settings.TIME_ZONE, "default"


def time_zone_source(request) -> str:
    return getattr(request, _SOURCE_ATTR, "default")


class TimeZoneMiddleware:
    """Activates the request's zone (see the module docstring); after authentication."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info.startswith("/api/"):
            timezone.deactivate()
            return self.get_response(request)
        name, source = request_time_zone(request)
        setattr(request, _SOURCE_ATTR, source)
        timezone.activate(ZoneInfo(name))
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()


def local_date_time(value) -> tuple[str, str]:
    """An aware datetime as the pages' (date, 24-hour time) inputs in the active zone."""
    if value is None:
        return "", ""
    local = timezone.localtime(value)
    return local.strftime("%Y-%m-%d"), local.strftime("%H:%M")
