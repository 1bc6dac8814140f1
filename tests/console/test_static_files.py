"""Static files as production serves them: hashed names, gzip and brotli copies made at
collectstatic, far-future immutable caching (whitenoise)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.templatetags.static import static
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]


def production_static_settings() -> dict:
    code = (
        "import json; from agentops_site import settings as s;"
        "print(json.dumps({'storage': s.STORAGES['staticfiles']['BACKEND'],"
        " 'finders': s.WHITENOISE_USE_FINDERS, 'debug': s.DEBUG}))"
    )
    env = {**os.environ, "AGENTOPS_ENV": "production", "SECRET_KEY": "x" * 50}
    env.pop("DEBUG", None)
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


@pytest.mark.django_db
def test_production_serves_hashed_compressed_files_cached_for_ever(tmp_path, settings):
    production = production_static_settings()
    assert production["debug"] is False and production["finders"] is False
    source = tmp_path / "source" / "agentops"
    source.mkdir(parents=True)
    (source / "app.js").write_text("const greeting = 'hello';\n" * 2000)
    settings.STATICFILES_DIRS = [tmp_path / "source"]
    settings.STATICFILES_FINDERS = ["django.contrib.staticfiles.finders.FileSystemFinder"]
    settings.STATIC_ROOT = tmp_path / "root"
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {"BACKEND": production["storage"]}}
    settings.WHITENOISE_USE_FINDERS = False
    settings.DEBUG = False

    call_command("collectstatic", interactive=False, verbosity=0)
    url = static("agentops/app.js")

    assert re.fullmatch(r"/static/agentops/app\.[0-9a-f]{12}\.js", url), url
    client = Client()
    for accepted, encoding in (("gzip, deflate, br", "br"), ("gzip", "gzip")):
        response = client.get(url, HTTP_ACCEPT_ENCODING=accepted)
        assert response.status_code == 200
        assert response["Content-Encoding"] == encoding
        assert int(response["Content-Length"]) < 2000
        assert "max-age=315360000" in response["Cache-Control"]
        assert "immutable" in response["Cache-Control"]
