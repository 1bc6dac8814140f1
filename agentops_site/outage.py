"""A database outage answered as one: 503 with Retry-After, never a bare 500.

Two hooks, because Django reaches a view's and a middleware's exceptions differently:

- `OutageMiddleware.process_exception` sees what a view (or its template) raises;
- `server_error`, the site's handler500, sees what Django turned into a 500 anywhere
  else, e.g. the session and user loaded for LoginRequiredMiddleware before any view
  runs. Django converts such an exception into a response inside the middleware that
  raised it, so no middleware around it can catch it; handler500 is where it arrives.

Pages get the console's page with its navigation links, drawn without the request (no
context processors, no user: nothing that would query the database again); /api/ and
the OTLP paths get JSON. Any other exception stays the 500 it is, drawn the same way.
"""

from __future__ import annotations

import logging
import sys

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import loader
from django.utils.deprecation import MiddlewareMixin

from traces.dberrors import is_outage

logger = logging.getLogger(__name__)

MESSAGE = "The console's database is unavailable. Nothing was changed; try again shortly."


def _wants_json(request: HttpRequest) -> bool:
    path = request.path
    if path.startswith("/api/") or "/v1/" in path:
        return True
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept


def outage_response(request: HttpRequest) -> HttpResponse:
    seconds = settings.OTLP_RETRY_AFTER_SECONDS
    if _wants_json(request):
        response: HttpResponse = JsonResponse(
            {"detail": MESSAGE, "retry_after": seconds}, status=503
        )
    else:
        html = loader.render_to_string(
            "503.html", {"retry_after": seconds, "message": MESSAGE, "static_nav": True}
        )
        response = HttpResponse(html, status=503)
    response["Retry-After"] = str(seconds)
    response["Cache-Control"] = "no-store"
    return response


class OutageMiddleware(MiddlewareMixin):
    def process_exception(self, request: HttpRequest, exception: Exception):
        if not is_outage(exception):
            return None
        logger.warning("database unavailable (%s): %s", request.path, exception)
        return outage_response(request)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: an outage raised outside a view is still a 503; any other error is the
    console's 500 page (JSON under /api/), which needs neither the database nor the user."""
    exc = sys.exc_info()[1]
    if exc is not None and is_outage(exc):
        return outage_response(request)
    if _wants_json(request):
        return JsonResponse({"detail": "Server error."}, status=500)
    return HttpResponse(loader.render_to_string("500.html", {"static_nav": True}), status=500)
