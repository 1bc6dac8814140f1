import os

# Tests that fold rollups would otherwise enqueue evaluations into the development
# broker folder; an in-memory broker keeps them out of the way (nothing consumes them).
os.environ.setdefault("CELERY_BROKER_URL", "memory://")

import pytest
from django.test import Client

from tests.factories import MembershipFactory, ProjectFactory, UserFactory
from traces.models import Membership
from traces.services import ingest_key_create


@pytest.fixture
def project(db):
    return ProjectFactory(slug="acme-support", name="Acme Support")


@pytest.fixture
def other_project(db):
    return ProjectFactory(slug="other-team", name="Other Team")


@pytest.fixture
def user(project):
    user = UserFactory(username="ada")
    MembershipFactory(project=project, user=user, role=Membership.Role.ADMIN)
    return user


@pytest.fixture
def outsider(other_project):
    """A member of another project only: must never see `project`'s data."""
    user = UserFactory(username="mallory")
    MembershipFactory(project=other_project, user=user, role=Membership.Role.ADMIN)
    return user


@pytest.fixture
def ingest_secret(project):
    return ingest_key_create(project=project).secret


@pytest.fixture
def client_logged_in(user):
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def outsider_client(outsider):
    client = Client()
    client.force_login(outsider)
    return client


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # The real hasher costs ~0.3 s per user; what is tested here is not its strength.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _retention_past_test_dates(settings):
    # Tests send spans with fixed dates from 2000 on; retention (traces/retention.py) is
    # tested in tests/traces/test_retention.py with its own settings.
    from traces.retention import retention_cache_clear

    settings.SPAN_RETENTION_DAYS = 20_000
    settings.ROLLUP_RETENTION_DAYS = 20_000
    retention_cache_clear()


@pytest.fixture(autouse=True)
def _no_per_process_caches(settings):
    # Ingest key checks and price overrides are cached per process for a few seconds in
    # production; tests that change either expect the change at once.
    # (tests/traces/test_caches.py turns the caching on and tests it.)
    from django.core.cache import cache

    from traces import pricing

    settings.INGEST_KEY_CACHE_SECONDS = 0
    settings.PRICE_OVERRIDES_CACHE_SECONDS = 0
    cache.clear()
    pricing._book_cache.clear()


@pytest.fixture(scope="session")
def ch_store(tmp_path_factory):
    """The ClickHouse span store on chDB (the engine in process). chDB allows one data path
    per process, so every test of the session shares this one; tests select it with
    override_settings(SPAN_STORE_URL=ch_store.url) and write under project ids of their
    own."""
    try:
        import chdb  # noqa: F401
    except ImportError:
        reason = "chdb is not installed: pip install -e '.[dev]' to run the span store tests"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    from traces.spanstore import span_store

    store = span_store(f"chdb://{tmp_path_factory.mktemp('chdb')}")
    store.ensure_schema()
    return store
