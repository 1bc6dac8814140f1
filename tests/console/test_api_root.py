"""GET /api/ lists every endpoint with its address; /api/docs/ is Swagger UI from our own
static files, with no inline script (the CSP allows none)."""

from __future__ import annotations

import re

import pytest
from django.contrib.staticfiles import finders
from django.test import Client
from django.urls import Resolver404, resolve

from console.api import api_endpoints

pytestmark = pytest.mark.django_db


def test_the_root_lists_every_endpoint_with_links(client_logged_in):
    body = client_logged_in.get("/api/").json()

    assert body["docs"] == "http://testserver/api/docs/"
    assert body["schema"] == "http://testserver/api/schema/"
    endpoints = body["endpoints"]
    assert endpoints["trace-list"] == "http://testserver/api/traces/"
    assert endpoints["trace-detail"] == "http://testserver/api/traces/{trace_id}/"
    assert endpoints["approval-detail"] == "http://testserver/api/approvals/{approval_id}/"
    assert {"budget-check", "policy-check", "approval-list", "outcomes", "cost"} <= set(endpoints)
    # Every address, its parameters filled in, reaches the endpoint of that name.
    for name, url in endpoints.items():
        path = re.sub(r"\{\w+\}", "1", url.removeprefix("http://testserver"))
        assert resolve(path).url_name == f"api-{name}", (name, url)


def test_a_project_key_reads_the_root_and_nobody_else(ingest_secret):
    key = Client(headers={"Authorization": f"Bearer {ingest_secret}"})

    assert key.get("/api/").status_code == 200
    assert Client().get("/api/").status_code == 401


def test_the_listing_follows_the_url_configuration():
    endpoints = api_endpoints()

    assert "root" not in endpoints and "docs" not in endpoints
    for path in endpoints.values():
        try:
            resolve(re.sub(r"\{\w+\}", "1", path))
        except Resolver404:  # pragma: no cover - the assertion below explains it
            pytest.fail(f"{path} does not resolve")


def test_the_docs_are_swagger_ui_from_our_static_files_without_inline_script():
    response = Client().get("/api/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert scripts and all('src="' in attrs and not body.strip() for attrs, body in scripts)
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert not [s for s in sources if s.startswith(("http:", "https:", "//"))]
    for src in sources:
        if src.startswith("/static/"):
            assert finders.find(src.removeprefix("/static/")), src
    assert "script-src 'self'" in response["Content-Security-Policy"]

    script = Client().get("/api/docs/?script=")
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert "/api/schema/" in script.content.decode()
