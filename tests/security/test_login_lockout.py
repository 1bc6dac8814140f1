"""Failed logins are counted per username + address and per address (django-axes); past
a limit the form and HTTP Basic answer 429 with Retry-After until the cool-off ends."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.db.models import F
from django.test import Client

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests-1"  # tests.factories.UserFactory
MESSAGE = "Too many failed logins; try again in 15 minutes."


def form_login(client: Client, username: str, password: str):
    return client.post("/accounts/login/", {"username": username, "password": password})


def basic(username: str, password: str, **extra) -> Client:
    raw = base64.b64encode(f"{username}:{password}".encode()).decode()
    return Client(headers={"Authorization": f"Basic {raw}"}, **extra)


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def cool_off_passes():
    """Moves every counted failure back past the cool-off, as if the time had passed."""
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - timedelta(minutes=15, seconds=1))


def test_the_login_form_locks_a_user_out_after_five_wrong_passwords(user):
    client = Client()
    statuses = [form_login(client, "ada", f"wrong-{i}").status_code for i in range(100)]
    assert statuses[:4] == [200] * 4  # the form again, with its error
    assert set(statuses[4:]) == {429}

    response = form_login(client, "ada", PASSWORD)
    assert response.status_code == 429 and not logged_in(client)
    assert 14 * 60 < int(response["Retry-After"]) <= 15 * 60
    assert MESSAGE in response.content.decode()
    # Refused attempts are not counted: the lock ends when the message says.
    assert AccessAttempt.objects.get().failures_since_start == 5

    cool_off_passes()
    response = form_login(client, "ada", PASSWORD)
    assert response.status_code == 302 and logged_in(client)


def test_http_basic_on_the_api_locks_out_the_same_way(user):
    statuses = [basic("ada", f"wrong-{i}").get("/api/budgets/").status_code for i in range(100)]
    assert statuses[:4] == [401] * 4
    assert set(statuses[4:]) == {429}

    response = basic("ada", PASSWORD).get("/api/budgets/")
    assert response.status_code == 429
    assert response.json() == {"detail": MESSAGE}
    assert 14 * 60 < int(response["Retry-After"]) <= 15 * 60
    # Every API endpoint counts the same failures.
    assert basic("ada", PASSWORD).get("/api/traces/").status_code == 429

    cool_off_passes()
    assert basic("ada", PASSWORD).get("/api/budgets/").status_code == 200


def test_the_form_and_the_api_share_one_count(user):
    client = Client()
    for i in range(3):
        form_login(client, "ada", f"wrong-{i}")
    assert basic("ada", "wrong").get("/api/budgets/").status_code == 401
    assert basic("ada", "wrong").get("/api/budgets/").status_code == 429
    assert form_login(client, "ada", PASSWORD).status_code == 429


def test_a_user_locked_out_from_one_address_logs_in_from_another(user):
    attacker = Client(REMOTE_ADDR="203.0.113.7")
    for i in range(5):
        form_login(attacker, "ada", f"wrong-{i}")
    assert form_login(attacker, "ada", PASSWORD).status_code == 429

    owner = Client(REMOTE_ADDR="198.51.100.20")
    assert form_login(owner, "ada", PASSWORD).status_code == 302 and logged_in(owner)
    assert (
        basic("ada", PASSWORD, REMOTE_ADDR="198.51.100.20").get("/api/budgets/").status_code == 200
    )


def test_ten_failures_from_one_address_lock_the_address_for_every_user(user):
    UserFactory(username="grace")
    client = Client(REMOTE_ADDR="203.0.113.8")
    # A different username each time: no user reaches five from here, the address reaches ten.
    statuses = [form_login(client, f"guess-{i}", "x").status_code for i in range(10)]
    assert statuses == [200] * 9 + [429]
    assert form_login(client, "ada", PASSWORD).status_code == 429
    assert basic("grace", PASSWORD, REMOTE_ADDR="203.0.113.8").get("/api/budgets/").status_code == (
        429
    )
    other = Client(REMOTE_ADDR="203.0.113.9")
    assert form_login(other, "ada", PASSWORD).status_code == 302


def test_the_limits_and_cool_off_come_from_settings(user, settings):
    settings.LOGIN_LOCKOUTS = [(["username", "ip_address"], 2), (["ip_address"], 3)]
    settings.AXES_FAILURE_LIMIT = 3
    settings.AXES_COOLOFF_TIME = timedelta(minutes=2)
    client = Client()
    assert form_login(client, "ada", "wrong").status_code == 200
    response = form_login(client, "ada", "wrong")
    assert response.status_code == 429
    assert "try again in 2 minutes" in response.content.decode()
    assert int(response["Retry-After"]) <= 120


def test_behind_a_proxy_the_address_is_the_one_the_proxy_saw(user, settings):
    settings.LOGIN_ADDRESS_FROM_FORWARDED_FOR = True

    def via_proxy(forwarded_for):
        return Client(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded_for)

    for i in range(5):
        # The client writes its own first entry; the proxy appends the real address.
        form_login(via_proxy(f"192.0.2.{i}, 203.0.113.7"), "ada", "wrong")
    assert form_login(via_proxy("203.0.113.7"), "ada", PASSWORD).status_code == 429
    assert AccessAttempt.objects.get().ip_address == "203.0.113.7"
    # Another client behind the same proxy is not locked out.
    assert form_login(via_proxy("198.51.100.20"), "ada", PASSWORD).status_code == 302


def test_an_absurd_username_is_refused_not_an_error(user):
    assert basic("a" * 10_000, "x").get("/api/budgets/").status_code == 401
    assert basic("nul\0byte", "x").get("/api/budgets/").status_code == 401
    assert len(AccessAttempt.objects.order_by("id").first().username) == 255
