"""A staticfiles finder that serves plotly.js from the installed `plotly` package.

The pages draw their charts with plotly.js, served from our own static URL (never a
CDN). The 4.6 MB bundle ships inside the Python package, so rather than copying it
into the repository this finder exposes exactly one file of it,
`vendor/plotly.min.js`: `collectstatic` copies it into STATIC_ROOT in production and
whitenoise (WHITENOISE_USE_FINDERS) or runserver serve it straight from site-packages
in development. Upgrading the `plotly` package upgrades the chart library.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from django.contrib.staticfiles.finders import BaseFinder
from django.core.checks import Error
from django.core.files.storage import FileSystemStorage

PREFIX = "vendor"
FILENAME = "plotly.min.js"
URL_PATH = f"{PREFIX}/{FILENAME}"


def plotly_js_path() -> Path | None:
    """Where the installed plotly package keeps plotly.min.js, None when it is missing."""
    try:
        import plotly
    except ImportError:
        return None
    path = Path(plotly.__file__).resolve().parent / "package_data" / FILENAME
    return path if path.is_file() else None


class PlotlyFinder(BaseFinder):
    """Finds `vendor/plotly.min.js` and nothing else."""

    @cached_property
    def storage(self) -> FileSystemStorage | None:
        path = plotly_js_path()
        if path is None:
            return None
        storage = FileSystemStorage(location=str(path.parent))
        # collectstatic and whitenoise put a storage's files under its prefix.
        storage.prefix = PREFIX
        return storage

    def check(self, **kwargs):
        if plotly_js_path() is None:
            return [
                Error(
                    "plotly.min.js was not found in the installed plotly package.",
                    hint="pip install 'plotly>=6' (a dependency of this project).",
                    obj=self,
                    id="agentops.E001",
                )
            ]
        return []

    def find(self, path, find_all=False, **kwargs):
        found = plotly_js_path() if path == URL_PATH else None
        if found is None:
            return [] if find_all else None
        return [str(found)] if find_all else str(found)

    def list(self, ignore_patterns):
        if self.storage is not None:
            yield FILENAME, self.storage
