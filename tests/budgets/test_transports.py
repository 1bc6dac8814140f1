"""Channel kinds against real receivers on loopback: SMTP (aiosmtpd) and HTTP."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time

import pytest
from django.core.exceptions import ValidationError

from budgets import urlsafety
from budgets.transports import AlertMessage, TransportError, config_validate, validate_config
from budgets.transports import email as email_transport
from budgets.transports import slack as slack_transport
from budgets.transports import webhook as webhook_transport
from tests.budgets.conftest import TRACE_IDS, WEBHOOK_SECRET, free_port

pytestmark = pytest.mark.django_db


def errors_of(kind, config, **kwargs) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        validate_config(kind, config, **kwargs)
    return caught.value.message_dict


# ------------------------------------------------------------------ the message


def test_the_message_carries_the_alert_and_links(alert):
    message = AlertMessage.from_alert(alert)

    assert message.title == "Monthly LLM spend: 80% of the monthly limit reached"
    assert message.severity == "warning"
    assert message.url == f"https://console.example.test/alerts/{alert.pk}/"
    assert [link.url for link in message.traces] == [
        f"https://console.example.test/p/acme-support/traces/{tid}/" for tid in TRACE_IDS
    ]
    assert "Value: $81.25 of $100.00 (81.2%)" in message.text
    assert "Period: 2025-06-01 00:00 → 2025-07-01 00:00 (UTC)" in message.text
    assert message.project == "Acme Support"


def test_an_alert_at_the_limit_is_critical(make_alert):
    assert AlertMessage.from_alert(make_alert(threshold=100, value="100.5")).severity == "critical"


# ------------------------------------------------------------------ email


def test_email_arrives_with_subject_and_body(smtp_server, make_channel, alert):
    channel = make_channel("email", {"to": ["oncall@example.com", "cfo@example.com"]})

    email_transport.notify(channel, AlertMessage.from_alert(alert))

    assert len(smtp_server.messages) == 1
    sent = smtp_server.messages[0]
    assert sent["Subject"] == "[AgentOps] Monthly LLM spend: 80% of the monthly limit reached"
    assert sent["From"] == "AgentOps Console <alerts@console.example.test>"
    assert sent["To"] == "oncall@example.com, cfo@example.com"
    assert sent["X-AgentOps-Alert-Id"] == str(alert.pk)
    assert sent["Auto-Submitted"] == "auto-generated"
    assert smtp_server.envelopes[0].rcpt_tos == ["oncall@example.com", "cfo@example.com"]
    body = sent.get_content()
    assert "Monthly LLM spend is at 80% of its $100.00 monthly limit." in body
    assert "Value: $81.25 of $100.00 (81.2%)" in body
    assert f"Open the alert: https://console.example.test/alerts/{alert.pk}/" in body
    assert f"https://console.example.test/p/acme-support/traces/{TRACE_IDS[0]}/" in body


def test_email_refused_recipient_is_permanent(smtp_server, make_channel, alert):
    smtp_server.rcpt_reply = "550 5.1.1 No such user"
    channel = make_channel("email", {"to": ["nobody@example.com"]})

    with pytest.raises(TransportError) as caught:
        email_transport.notify(channel, AlertMessage.from_alert(alert))

    assert caught.value.permanent
    assert caught.value.status_code == 550
    assert "nobody@example.com: 550 5.1.1 No such user" in str(caught.value)


def test_email_4xx_reply_is_temporary(smtp_server, make_channel, alert):
    smtp_server.rcpt_reply = "451 4.3.0 Try again later"
    channel = make_channel("email", {"to": ["oncall@example.com"]})

    with pytest.raises(TransportError) as caught:
        email_transport.notify(channel, AlertMessage.from_alert(alert))

    assert not caught.value.permanent
    assert caught.value.status_code == 451


def test_email_server_down_is_temporary(settings, make_channel, alert):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()  # nothing listens
    channel = make_channel("email", {"to": ["oncall@example.com"]})

    with pytest.raises(TransportError) as caught:
        email_transport.notify(channel, AlertMessage.from_alert(alert))

    assert not caught.value.permanent
    assert "Could not reach the SMTP server" in str(caught.value)


# ------------------------------------------------------------------ Slack


def test_slack_payload_shape(receiver, allow_private_urls, make_channel, alert):
    channel = make_channel("slack", {"webhook_url": receiver.url("/services/T1/B2/xyz")})

    slack_transport.notify(channel, AlertMessage.from_alert(alert))

    (request,) = receiver.requests
    assert request.path == "/services/T1/B2/xyz"
    assert request.headers["content-type"].startswith("application/json")
    payload = request.json()
    assert payload["text"] == ":warning: Monthly LLM spend: 80% of the monthly limit reached"
    assert [b["type"] for b in payload["blocks"]] == [
        "header",
        "section",
        "section",
        "section",
        "context",
    ]
    header, summary, fields, traces, _ = payload["blocks"]
    assert header["text"] == {
        "type": "plain_text",
        "text": "Monthly LLM spend: 80% of the monthly limit reached",
        "emoji": True,
    }
    assert (
        f"<https://console.example.test/alerts/{alert.pk}/|Open the alert>"
        in (summary["text"]["text"])
    )
    assert fields["fields"][0]["text"] == "*Value*\n$81.25 of $100.00 (81.2%)"
    assert TRACE_IDS[0] in traces["text"]["text"]


def test_slack_escapes_mrkdwn(receiver, allow_private_urls, make_channel, alert):
    alert.message = "Spend <b>&</b> more"
    channel = make_channel("slack", {"webhook_url": receiver.url()})

    slack_transport.notify(channel, AlertMessage.from_alert(alert))

    text = receiver.requests[0].json()["blocks"][1]["text"]["text"]
    assert text.startswith("Spend &lt;b&gt;&amp;&lt;/b&gt; more")


@pytest.mark.parametrize(
    ("status", "body"),
    [(404, b"no_service"), (403, b"invalid_token"), (410, b"channel_is_archived")],
)
def test_slack_gone_hook_is_permanent(
    receiver, allow_private_urls, make_channel, alert, status, body
):
    receiver.always(status, body)
    channel = make_channel("slack", {"webhook_url": receiver.url()})

    with pytest.raises(TransportError) as caught:
        slack_transport.notify(channel, AlertMessage.from_alert(alert))

    assert caught.value.permanent
    assert body.decode() in str(caught.value)


@pytest.mark.parametrize(("status", "body"), [(429, b"rate_limited"), (500, b"rollup_error")])
def test_slack_rate_limit_and_outage_are_temporary(
    receiver, allow_private_urls, make_channel, alert, status, body
):
    receiver.always(status, body)
    channel = make_channel("slack", {"webhook_url": receiver.url()})

    with pytest.raises(TransportError) as caught:
        slack_transport.notify(channel, AlertMessage.from_alert(alert))

    assert not caught.value.permanent
    assert caught.value.status_code == status


def test_slack_url_must_be_slack_unless_private_urls_are_allowed(settings):
    settings.ALERTS_ALLOW_PRIVATE_URLS = False
    hook = "https://hooks.slack.com/services/T000/B000/XXXX"

    assert validate_config("slack", {"webhook_url": hook}) == {"webhook_url": hook}
    assert "webhook_url" in errors_of("slack", {"webhook_url": "https://example.com/hook"})
    assert "webhook_url" in errors_of(
        "slack", {"webhook_url": "http://hooks.slack.com/services/T/B/X"}
    )

    settings.ALERTS_ALLOW_PRIVATE_URLS = True
    loopback = "http://127.0.0.1:9/services/x"
    assert validate_config("slack", {"webhook_url": loopback}) == {"webhook_url": loopback}


def test_a_slack_config_changed_behind_the_console_fails_when_read(
    settings, receiver, make_channel, alert
):
    settings.ALERTS_ALLOW_PRIVATE_URLS = False
    channel = make_channel("slack", {"webhook_url": receiver.url()})

    with pytest.raises(TransportError) as caught:
        slack_transport.notify(channel, AlertMessage.from_alert(alert))

    assert caught.value.permanent
    assert "webhook_url" in str(caught.value)
    assert receiver.requests == []


# ------------------------------------------------------------------ webhook


def test_webhook_is_signed_and_verifiable(receiver, webhook_channel, alert):
    before = int(time.time())

    webhook_transport.notify(webhook_channel, AlertMessage.from_alert(alert))

    (request,) = receiver.requests
    timestamp = request.headers["x-agentops-timestamp"]
    assert before <= int(timestamp) <= time.time()
    expected = hmac.new(
        WEBHOOK_SECRET.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256
    ).hexdigest()
    assert request.headers["x-agentops-signature"] == f"t={timestamp},v1={expected}"
    assert request.headers["x-team"] == "payments"
    assert request.headers["x-agentops-event"] == "budget_alert"
    assert request.headers["x-agentops-alert-id"] == str(alert.pk)
    assert request.headers["content-type"] == "application/json; charset=utf-8"


def test_webhook_body_documents_the_alert(receiver, webhook_channel, alert):
    webhook_transport.notify(webhook_channel, AlertMessage.from_alert(alert))

    body = receiver.requests[0].json()
    assert body["version"] == 1
    assert body["event"] == "budget_alert"
    assert body["alert"] == {
        "id": alert.pk,
        "kind": "threshold",
        "status": "firing",
        "severity": "warning",
        "title": "Monthly LLM spend: 80% of the monthly limit reached",
        "message": "Monthly LLM spend is at 80% of its $100.00 monthly limit.",
        "text": body["alert"]["text"],
        "threshold_percent": 80,
        "thresholds_crossed": [80],
        "value": "81.25",
        "limit": "100",
        "percent_of_limit": "81.2",
        "value_display": "$81.25",
        "limit_display": "$100.00",
        "created_at": "2025-06-14T09:30:00Z",
        "url": f"https://console.example.test/alerts/{alert.pk}/",
    }
    assert body["envelope"] == {
        "id": alert.envelope_id,
        "name": "Monthly LLM spend",
        "metric": "cost_usd",
        "metric_label": "Cost (USD)",
        "period": "month",
        "timezone": "UTC",
    }
    assert body["period"] == {"start": "2025-06-01T00:00:00Z", "end": "2025-07-01T00:00:00Z"}
    assert body["project"] == {"slug": "acme-support", "name": "Acme Support"}
    assert body["traces"][0] == {
        "trace_id": TRACE_IDS[0],
        "url": f"https://console.example.test/p/acme-support/traces/{TRACE_IDS[0]}/",
    }
    assert body["sent_at"].endswith("Z")


def test_a_tampered_webhook_body_fails_verification(alert):
    config = webhook_transport.WebhookConfig(url="https://example.com/h", secret=WEBHOOK_SECRET)
    body, headers = webhook_transport.request_build(
        config, AlertMessage.from_alert(alert), now=1_750_000_000
    )
    _, v1 = headers["X-AgentOps-Signature"].split(",")
    tampered = body.replace(b'"81.25"', b'"1.25"')
    recomputed = hmac.new(
        WEBHOOK_SECRET.encode(), b"1750000000." + tampered, hashlib.sha256
    ).hexdigest()
    assert v1 != f"v1={recomputed}"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
def test_webhook_client_errors_are_permanent(receiver, webhook_channel, alert, status):
    receiver.always(status, b"nope")

    with pytest.raises(TransportError) as caught:
        webhook_transport.notify(webhook_channel, AlertMessage.from_alert(alert))

    assert caught.value.permanent
    assert caught.value.status_code == status


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_webhook_overload_and_server_errors_are_temporary(receiver, webhook_channel, alert, status):
    receiver.always(status, b"busy")

    with pytest.raises(TransportError) as caught:
        webhook_transport.notify(webhook_channel, AlertMessage.from_alert(alert))

    assert not caught.value.permanent
    assert caught.value.status_code == status


def test_webhook_redirects_are_not_followed(receiver, webhook_channel, alert):
    receiver.always(302)
    receiver.extra_headers = {"Location": "http://169.254.169.254/latest/meta-data/"}

    with pytest.raises(TransportError) as caught:
        webhook_transport.notify(webhook_channel, AlertMessage.from_alert(alert))

    assert "redirects are not followed" in str(caught.value)
    assert len(receiver.requests) == 1


def test_webhook_timeout_is_temporary(settings, receiver, webhook_channel, alert):
    settings.ALERT_HTTP_TIMEOUT = 0.3
    receiver.delay = 1.0

    with pytest.raises(TransportError) as caught:
        webhook_transport.notify(webhook_channel, AlertMessage.from_alert(alert))

    assert not caught.value.permanent
    assert "Timed out" in str(caught.value)


def test_webhook_connection_refused_is_temporary(allow_private_urls, make_channel, alert):
    channel = make_channel(
        "webhook", {"url": f"http://127.0.0.1:{free_port()}/", "secret": WEBHOOK_SECRET}
    )

    with pytest.raises(TransportError) as caught:
        webhook_transport.notify(channel, AlertMessage.from_alert(alert))

    assert not caught.value.permanent
    assert "Connection failed" in str(caught.value)


# ------------------------------------------------------------------ config validation


def test_config_errors_are_field_level():
    assert errors_of("email", {"to": []}) == {"to": ["Must have at least 1 item(s)."]}
    assert errors_of("email", {"to": ["ok@example.com", "not-an-address"], "cc": []}) == {
        "to.1": ["“not-an-address” is not a valid email address."],
        "cc": ["Unknown setting."],
    }
    assert errors_of("email", {"to": "ok@example.com"}) == {"to": ["Must be a list."]}
    assert set(errors_of("email", {"to": [f"u{i}@example.com" for i in range(21)]})) == {"to"}
    assert errors_of("email", {}) == {"to": ["This setting is required."]}

    errors = errors_of("webhook", {"url": "ftp://example.com/x", "secret": "short"})
    assert errors == {
        "url": ["Only http:// and https:// URLs are allowed."],
        "secret": ["Must be at least 16 characters long."],
    }
    assert errors_of("slack", {}) == {"webhook_url": ["This setting is required."]}
    assert errors_of("pager", {}) == {
        "kind": ["Unknown channel kind “pager”; choose email, slack, webhook."]
    }
    assert errors_of("email", ["ok@example.com"]) == {"config": ["Settings must be a JSON object."]}


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"Content-Type": "text/plain"}, "set by the console"),
        ({"X-AgentOps-Signature": "forged"}, "set by the console"),
        ({"Bad Name": "x"}, "not a valid header name"),
        ({"X-Ok": "two\r\nlines"}, "one line"),
    ],
)
def test_webhook_headers_are_checked(allow_private_urls, headers, message):
    config = {"url": "http://127.0.0.1:9/", "secret": WEBHOOK_SECRET, "headers": headers}
    (error,) = errors_of("webhook", config)["headers"]
    assert message in error


def test_email_addresses_are_normalised():
    config = validate_config("email", {"to": [" a@example.com ", "a@example.com", "b@example.com"]})
    assert config == {"to": ["a@example.com", "b@example.com"]}


def test_a_webhook_secret_is_generated_when_absent(allow_private_urls):
    result = config_validate("webhook", {"url": "http://127.0.0.1:9/hook"})

    secret = result.config["secret"]
    assert len(secret) >= 32
    assert result.config == {"url": "http://127.0.0.1:9/hook", "secret": secret, "headers": {}}
    (notice,) = result.notices
    assert secret in notice
    assert "generated" in notice


def test_an_update_without_secret_keeps_the_stored_one(allow_private_urls):
    previous = {"url": "http://127.0.0.1:9/old", "secret": WEBHOOK_SECRET}

    result = config_validate("webhook", {"url": "http://127.0.0.1:9/new"}, previous=previous)

    assert result.config["secret"] == WEBHOOK_SECRET
    assert result.notices == []


# ------------------------------------------------------------------ private addresses


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",  # noqa: S104 - a refused address, not a bind
        "224.0.0.251",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "64:ff9b::a9fe:a9fe",
        "2002:c0a8:0101::1",
    ],
)
def test_it_refuses_non_public_addresses(address):
    assert urlsafety.address_refusal(address) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"])
def test_it_accepts_public_addresses(address):
    assert urlsafety.address_refusal(address) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://10.0.0.8/hook",
        "http://[::1]:9000/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://2130706433/",  # 127.0.0.1 as a number
    ],
)
def test_private_urls_are_refused_on_validation(settings, url):
    settings.ALERTS_ALLOW_PRIVATE_URLS = False

    (error,) = errors_of("webhook", {"url": url, "secret": WEBHOOK_SECRET})["url"]

    assert "ALERTS_ALLOW_PRIVATE_URLS" in error


def test_private_urls_are_accepted_when_allowed(allow_private_urls):
    config = {"url": "http://localhost:8080/hook", "secret": WEBHOOK_SECRET, "headers": {}}
    assert validate_config("webhook", config) == config


def test_a_url_resolving_to_loopback_is_refused_at_send_time(
    settings, receiver, make_channel, alert
):
    # Saved while allowed (or written straight to the database), sent when not.
    settings.ALERTS_ALLOW_PRIVATE_URLS = False
    channel = make_channel(
        "webhook", {"url": receiver.url(host="localhost"), "secret": WEBHOOK_SECRET}
    )

    with pytest.raises(TransportError) as caught:
        webhook_transport.notify(channel, AlertMessage.from_alert(alert))

    assert caught.value.permanent
    assert "localhost resolves to" in str(caught.value)
    assert receiver.requests == []


def test_credentials_in_urls_are_refused(allow_private_urls):
    (error,) = errors_of(
        "webhook", {"url": "https://user:pw@example.com/", "secret": WEBHOOK_SECRET}
    )["url"]
    assert "header" in error


def test_it_connects_to_the_address_it_checked(settings, monkeypatch):
    """DNS rebinding: the name answers a public address to the check and loopback
    afterwards; the connection goes to the checked address, with one lookup."""
    settings.ALERTS_ALLOW_PRIVATE_URLS = False
    answers = iter(["93.184.216.34", "127.0.0.1", "127.0.0.1"])
    lookups, connections = [], []

    def fake_getaddrinfo(host, port, *args, **kwargs):
        lookups.append(host)
        address = next(answers)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    def fake_create_connection(address, *args, **kwargs):
        connections.append(address)
        raise ConnectionRefusedError("refused in test")

    monkeypatch.setattr(urlsafety.socket, "getaddrinfo", fake_getaddrinfo)
    monkeypatch.setattr(urlsafety.socket, "create_connection", fake_create_connection)

    with pytest.raises(ConnectionRefusedError):
        urlsafety.http_post("http://rebind.example.test/hook", body=b"{}", headers={})

    assert lookups == ["rebind.example.test"]
    assert connections == [("93.184.216.34", 80)]


def test_the_host_header_keeps_the_name(allow_private_urls, receiver, monkeypatch):
    real_getaddrinfo = socket.getaddrinfo
    lookups = []

    def resolve_to_loopback(host, port, *args, **kwargs):
        lookups.append(host)
        if host == "hooks.agentops.test":
            host = "127.0.0.1"
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(urlsafety.socket, "getaddrinfo", resolve_to_loopback)

    response = urlsafety.http_post(
        f"http://hooks.agentops.test:{receiver.port}/x?y=1", body=b"{}", headers={}
    )

    assert response.status == 200
    assert receiver.requests[0].headers["host"] == f"hooks.agentops.test:{receiver.port}"
    assert receiver.requests[0].path == "/x?y=1"
    # The connection itself goes to the numeric address: no second lookup of the name.
    assert lookups.count("hooks.agentops.test") == 1


def test_a_test_message_is_marked_as_test(receiver, webhook_channel):
    webhook_transport.notify(webhook_channel, AlertMessage.sample(webhook_channel))

    (request,) = receiver.requests
    body = json.loads(request.body)
    assert body["event"] == "test"
    assert body["alert"]["id"] is None
    assert request.headers["x-agentops-event"] == "test"
    assert "x-agentops-alert-id" not in request.headers
