"""Outgoing requests to user-supplied URLs (webhooks, Slack), without letting a channel
reach the console's own network.

A URL is checked by resolving its host and refusing it when *any* address is
private, loopback, link-local, multicast, reserved or otherwise not globally
routable (IPv4 and IPv6, including IPv4 embedded in IPv6), unless
`settings.ALERTS_ALLOW_PRIVATE_URLS` is true. `http_post` then connects to one of
the addresses that were checked, never to a second lookup of the name: a DNS answer
that changes between the check and the connection (DNS rebinding) cannot bypass the
rule. TLS still verifies the certificate against the host name.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

ALLOWED_SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
# Enough for an error message from the receiver; nobody needs more of a webhook reply.
MAX_RESPONSE_BYTES = 64 * 1024

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class UnsafeURL(ValueError):
    """The URL is malformed, uses another scheme, or reaches a refused address."""


@dataclass(frozen=True)
class ParsedURL:
    scheme: str
    host: str  # without brackets for IPv6 literals
    port: int
    target: str  # path and query, as sent in the request line


@dataclass(frozen=True)
class CheckedURL:
    url: ParsedURL
    addresses: tuple[str, ...]  # every address the host resolved to, all allowed


@dataclass(frozen=True)
class HttpResponse:
    status: int
    reason: str
    body: bytes
    headers: dict[str, str]

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def private_urls_allowed() -> bool:
    return bool(getattr(settings, "ALERTS_ALLOW_PRIVATE_URLS", False))


def url_parse(url: str) -> ParsedURL:
    """Split an http(s) URL, refusing anything else (no DNS lookup here)."""
    if not isinstance(url, str) or not url.strip():
        raise UnsafeURL("Enter a URL.")
    if any(c in url for c in "\r\n\t "):
        raise UnsafeURL("The URL must not contain spaces or line breaks.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeURL(f"Not a valid URL: {exc}.") from None
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise UnsafeURL("Only http:// and https:// URLs are allowed.")
    if not parts.hostname:
        raise UnsafeURL("The URL has no host.")
    if parts.username is not None or parts.password is not None:
        # Credentials in the URL end up in logs and admin pages; headers do not.
        raise UnsafeURL("Put credentials in a header, not in the URL.")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return ParsedURL(
        scheme=scheme,
        host=parts.hostname,
        port=port or DEFAULT_PORTS[scheme],
        target=target,
    )


def address_refusal(address: str) -> str | None:
    """What kind of refused address this is ("a loopback address", …), or None when
    it is a public unicast address."""
    ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    candidates: list[IPAddress] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        # An IPv4 address hidden in IPv6 reaches that IPv4 host.
        if ip.ipv4_mapped is not None:
            candidates.append(ip.ipv4_mapped)
        if ip.sixtofour is not None:
            candidates.append(ip.sixtofour)
        if ip.teredo is not None:
            candidates.append(ip.teredo[1])
        if ip in _NAT64:
            candidates.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    for candidate in candidates:
        if candidate.is_loopback:
            return "a loopback address"
        if candidate.is_link_local:
            return "a link-local address"
        if candidate.is_multicast:
            return "a multicast address"
        if candidate.is_private:
            return "a private address"
        if candidate.is_unspecified or candidate.is_reserved or not candidate.is_global:
            return "a reserved or non-public address"
    return None


def host_resolve(host: str, port: int) -> tuple[str, ...]:
    """Every address of `host`, in the resolver's order, without duplicates."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise OSError(f"Could not resolve {host}: {exc}") from None
    return tuple(dict.fromkeys(str(info[4][0]) for info in infos))


def url_check(url: str) -> CheckedURL:
    """Parse and resolve `url`; raise UnsafeURL when it may not be reached.

    Raises OSError when the host does not resolve (a temporary condition at send
    time, a mistake at configuration time: the caller decides).
    """
    parsed = url_parse(url)
    addresses = host_resolve(parsed.host, parsed.port)
    if not addresses:
        raise OSError(f"Could not resolve {parsed.host}")
    if not private_urls_allowed():
        for address in addresses:
            reason = address_refusal(address)
            if reason is not None:
                where = (
                    f"{address} is {reason}"
                    if address == parsed.host
                    else f"{parsed.host} resolves to {address}, {reason}"
                )
                raise UnsafeURL(
                    f"{where}; alerts are not sent to private networks "
                    "(ALERTS_ALLOW_PRIVATE_URLS=true allows it)."
                )
    return CheckedURL(url=parsed, addresses=addresses)


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to a given address while Host stays the URL's host name."""

    def __init__(self, host: str, port: int, *, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, *, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        # SNI and certificate verification use the host name, not the address.
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def http_post(
    url: str, *, body: bytes, headers: dict[str, str], timeout: float | None = None
) -> HttpResponse:
    """POST `body` to `url` after checking it; redirects are not followed.

    Raises UnsafeURL for a refused URL, OSError (including timeouts and TLS errors)
    and http.client.HTTPException for network failures.
    """
    checked = url_check(url)
    parsed = checked.url
    timeout = float(timeout if timeout is not None else settings.ALERT_HTTP_TIMEOUT)
    connection_class = _PinnedHTTPSConnection if parsed.scheme == "https" else _PinnedHTTPConnection
    last_error: OSError | None = None
    for address in checked.addresses:
        conn = connection_class(parsed.host, parsed.port, address=address, timeout=timeout)
        try:
            conn.connect()
        except ssl.SSLError:
            conn.close()
            raise  # a certificate problem is not fixed by another address of the host
        except OSError as exc:
            conn.close()
            last_error = exc
            continue
        try:
            conn.request("POST", parsed.target, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read(MAX_RESPONSE_BYTES)
            return HttpResponse(
                status=response.status,
                reason=response.reason,
                body=data,
                headers={k.lower(): v for k, v in response.getheaders()},
            )
        finally:
            conn.close()
    assert last_error is not None
    raise last_error
