"""The person's own settings page: the time zone pages show times in."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from django.contrib import messages
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme

from traces.timezones import (
    COOKIE,
    SESSION_KEY,
    preference_time_zone,
    preference_time_zone_set,
    time_zone_source,
    zone_choices,
    zone_valid,
)


def time_zone_page(request):
    error = ""
    status = 200
    chosen = preference_time_zone(user=request.user)
    if request.method == "POST":
        wanted = request.POST.get("time_zone", "").strip()
        try:
            preference_time_zone_set(user=request.user, time_zone=wanted)
        except ValueError as e:
            error, status, chosen = str(e), 400, wanted
        else:
            request.session[SESSION_KEY] = wanted
            messages.success(
                request,
                f"Times are now shown in {wanted}."
                if wanted
                else "Times now follow your browser's time zone.",
            )
            target = request.POST.get("next", "")
            if not url_has_allowed_host_and_scheme(
                target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
            ):
                target = request.path
            return redirect(target)
    browser = request.COOKIES.get(COOKIE, "")
    now = timezone.now()
    shown = timezone.get_current_timezone_name()
    return render(
        request,
        "traces/time_zone.html",
        {
            "zones": zone_choices(),
            "chosen": chosen,
            "error": error,
            "shown": shown,
            "shown_abbr": now.astimezone(ZoneInfo(shown)).strftime("%Z"),
            "source": time_zone_source(request),
            "browser": browser if zone_valid(browser) else "",
            "next": request.GET.get("next", request.POST.get("next", "")),
        },
        status=status,
    )
