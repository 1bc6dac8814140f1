"""GET /api/: every endpoint of the API with its address, and where the docs are.

The list is read from the URL configuration, so an endpoint added to any app appears
here without being named twice. Endpoints that take a parameter are given as URI
templates (RFC 6570 level 1), e.g. `/api/traces/{trace_id}/`.
"""

from __future__ import annotations

import re

from django.urls import URLPattern, URLResolver, get_resolver, reverse
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

# `<int:pk>` of path() and `(?P<pk>[^/]+)` of re_path() alike become `{pk}`.
_PATH_PARAM = re.compile(r"<(?:\w+:)?(\w+)>")
_REGEX_PARAM = re.compile(r"\(\?P<(\w+)>[^)]*\)")


def _route(pattern) -> str:
    text = str(pattern.pattern)
    text = _REGEX_PARAM.sub(r"{\1}", text)
    text = _PATH_PARAM.sub(r"{\1}", text)
    return text.removeprefix("^").removesuffix("$").replace("/?", "/")


_NOT_ENDPOINTS = {"api-root", "api-docs", "api-schema"}


def _walk(patterns, prefix: str = ""):
    for p in patterns:
        if isinstance(p, URLResolver):
            yield from _walk(p.url_patterns, prefix + _route(p))
        elif isinstance(p, URLPattern):
            yield prefix + _route(p), p.name


def api_endpoints() -> dict[str, str]:
    """Name → path of every endpoint under /api/ (its URL name without `api-`), in the
    order of the URL configuration; the root, schema and docs left out."""
    found: dict[str, str] = {}
    for route, name in _walk(get_resolver().url_patterns):
        if not route.startswith("api/") or not name or name in _NOT_ENDPOINTS:
            continue
        found.setdefault(name.removeprefix("api-"), "/" + route)
    return found


class APIRootView(APIView):
    """The endpoints of this API with their addresses (URI templates where an endpoint
    takes a parameter), the OpenAPI schema and the interactive documentation."""

    @extend_schema(exclude=True)
    def get(self, request):
        # build_absolute_uri would percent-encode the template's braces.
        base = request.build_absolute_uri("/").rstrip("/")
        return Response(
            {
                "docs": base + reverse("api-docs"),
                "schema": base + reverse("api-schema"),
                "endpoints": {name: base + path for name, path in api_endpoints().items()},
            }
        )
