"""Production headers: a Content Security Policy on every page (no inline script, no
eval), HSTS and the HTTPS redirect (healthz exempt), and `check --deploy` clean."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

pytestmark = pytest.mark.django_db

ROOT = Path(settings.BASE_DIR)
SCRIPT_TAG = re.compile(r"<script\b([^>]*)>", re.IGNORECASE)


def _policy(response) -> dict[str, list[str]]:
    header = response.headers.get("Content-Security-Policy", "")
    return {d.split()[0]: d.split()[1:] for d in (p.strip() for p in header.split(";")) if d}


def _assert_strict_policy(response, where: str) -> None:
    policy = _policy(response)
    assert policy, f"{where}: no Content-Security-Policy header"
    assert policy["script-src"] == ["'self'"], where
    assert policy["object-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]
    assert not any("unsafe-eval" in v for values in policy.values() for v in values), where


def _assert_no_inline_script(html: str, where: str) -> None:
    for attrs in SCRIPT_TAG.findall(html):
        assert "src=" in attrs or 'type="application/json"' in attrs, (where, attrs)
    assert not re.search(r"\son[a-z]+\s*=", html), f"{where}: inline event handler"
    assert "javascript:" not in html, where


def test_every_page_carries_the_policy_and_no_inline_script(client_logged_in, site_pages):
    for name, url in site_pages.items():
        response = client_logged_in.get(url)
        assert response.status_code == 200, name
        assert response["Content-Type"].startswith("text/html")
        _assert_strict_policy(response, name)
        _assert_no_inline_script(response.content.decode(), name)


def test_the_login_page_errors_and_the_admin_carry_the_policy(client, staff_user_client):
    for response, name in (
        (client.get("/accounts/login/"), "login"),
        (client.get("/no-such-page/"), "404"),
        (staff_user_client.get("/admin/"), "admin"),
    ):
        _assert_strict_policy(response, name)


@pytest.fixture
def staff_user_client(db):
    from tests.factories import UserFactory

    client = Client()
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def test_no_template_holds_an_inline_script():
    for path in (ROOT / "templates").rglob("*.html"):
        _assert_no_inline_script(path.read_text(), str(path.relative_to(ROOT)))


def test_https_redirect_exempts_healthz_and_trusts_the_proxy_header(settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    client = Client()  # the middleware reads its settings when the client first loads it

    login = client.get("/accounts/login/")
    assert login.status_code == 301 and login.url.startswith("https://")
    # Health checks inside the network speak plain HTTP.
    assert client.get("/healthz").status_code == 200
    # Behind the TLS proxy: no redirect, and HSTS is sent.
    behind = client.get("/accounts/login/", headers={"X-Forwarded-Proto": "https"})
    assert behind.status_code == 200
    assert behind["Strict-Transport-Security"] == ("max-age=31536000; includeSubDomains; preload")


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("SECURE_", "SECRET_KEY"))}
    for name in ("DEBUG", "ALLOWED_HOSTS", "DJANGO_ALLOW_ASYNC_UNSAFE"):  # set by other tests
        keep.pop(name, None)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**keep, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_reports_nothing_with_production_settings(tmp_path):
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env={
            "AGENTOPS_ENV": "production",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "VAR_DIR": str(tmp_path),
        },
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues (0 silenced)." in output
    assert "WARNING" not in output and "?:" not in output


def test_a_plain_http_deployment_is_told_what_it_lacks(tmp_path):
    # docker-compose's local default: production, served over plain HTTP.
    result = _manage(
        "check",
        "--deploy",
        env={
            "AGENTOPS_ENV": "production",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "VAR_DIR": str(tmp_path),
            "SECURE_COOKIES": "false",
        },
    )
    output = result.stdout + result.stderr
    assert "security.W004" in output and "security.W008" in output  # no HSTS, no redirect
