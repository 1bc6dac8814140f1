"""The SDK is its own package (sdk/); `dev.py` installs it (editable) beside the console, and
the tests fall back on the checkout when it is not installed. Its calls go over real HTTP to
a live server, whose threads see the data only when it is committed (transactional_db)."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from tests.factories import ProjectFactory

SDK = Path(__file__).resolve().parents[2] / "sdk"
if str(SDK) not in sys.path:
    sys.path.insert(0, str(SDK))


@pytest.fixture
def project(transactional_db):
    return ProjectFactory(slug="acme-support", name="Acme Support")


@pytest.fixture
def silent_port():
    """A port that accepts connections and never answers: the client's timeout must act."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


@pytest.fixture
def closed_port():
    """A port nothing listens on: connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return port


@pytest.fixture(autouse=True)
def _no_cached_contracts():
    """The SDK caches contracts per process, by console and key: tests start without any."""
    from agentops_sdk.contracts import cache_clear

    cache_clear()
    yield
    cache_clear()
