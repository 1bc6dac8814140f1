"""A NUL character in the URL or the query string is answered 400, before any view.

No page or filter has a use for one, and PostgreSQL cannot compare text with a NUL in it:
every view that filters by `?project=`, `?agent=`, `?q=` … would otherwise answer 500.
Bodies are the views' own business (the OTLP decoder and the serializers clean or refuse
NUL field by field).
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse

NUL = "\x00"
MESSAGE = "A NUL character is not allowed in the URL or the query string."


class RefuseNulMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if NUL in request.path or any(
            NUL in key or any(NUL in v for v in values) for key, values in request.GET.lists()
        ):
            if request.path.startswith("/api/"):
                return JsonResponse({"detail": MESSAGE}, status=400)
            return HttpResponse(MESSAGE, status=400, content_type="text/plain; charset=utf-8")
        return self.get_response(request)
