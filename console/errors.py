"""The error pages that have the request at hand: drawn with the navigation.

500 and 503 are drawn without it (agentops_site/outage.py); 403 and 404 pages use
Django's own handlers with templates/403.html and 404.html, except under /api/, where a
client expects JSON.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views import defaults


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler404: JSON under /api/ (as the API's own 404s), the console's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: Django's own draws its template without the request, so the
    page would lose the navigation."""
    return render(request, "403_csrf.html", {"reason": reason}, status=403)
