"""Local argument validation: the registry's contracts, cached per process, and the verdict on
one call before the tool runs.

The versions of a tool's contract come from `GET /api/contracts/?name=<tool>` with the
client's project key, every version of the name: the decorator names its version, and a
deprecated version is still a registered one (the console's own contract check accepts it
too). A successful answer is kept for `Client.contract_ttl` seconds (60 by default) in a
cache shared by every client of the process with the same console and key.

When the registry cannot be reached (timeout, refused connection, 5xx, an answer that is
not the expected JSON):

* the versions fetched earlier are used, however old: a registered version's schema is
  not expected to change (a new schema is a new version), and an agent should not stop
  because its cache expired during a blip;
* with nothing fetched yet, the call is refused with `ContractUnavailable` (the default
  when the client fails closed) or runs unvalidated, marked `unavailable` on its span
  (`on_unavailable="run"`, the default when it fails open);
* the registry is asked again at most every `RETRY_AFTER_FAILURE` seconds, so an outage
  does not add a timeout to every tool call.

Validation needs `jsonschema` (`pip install 'agentops-sdk[validate]'`); the SDK itself
depends only on the OpenTelemetry API.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

if TYPE_CHECKING:
    from agentops_sdk.client import Client

RETRY_AFTER_FAILURE = 5.0
MAX_PAGES = 20
PAGE_SIZE = 500

# The outcomes share their names with the console's contract checks (ContractCheck.Outcome).
OK = "ok"
NO_CONTRACT = "no_contract"
UNKNOWN_VERSION = "unknown_version"
ARGUMENTS_INVALID = "arguments_invalid"
IDEMPOTENCY_KEY_MISSING = "idempotency_key_missing"
UNAVAILABLE = "unavailable"

INSTALL_HINT = "pip install 'agentops-sdk[validate]'"


class ContractViolation(Exception):
    """A call refused before the tool ran: its arguments (or missing idempotency key) break
    the tool's registered contract, or the contract it names is not registered."""

    def __init__(
        self, *, tool: str, version: str, outcome: str, pointer: str = "", message: str = ""
    ) -> None:
        where = f" at {pointer}" if pointer else ""
        super().__init__(f"{tool} {version}: {outcome.replace('_', ' ')}{where}: {message}")
        self.tool = tool
        self.version = version
        self.outcome = outcome
        self.pointer = pointer  # RFC 6901 JSON pointer into the arguments ("" = all of them)
        self.message = message


class ContractUnavailable(Exception):
    """The registry could not be reached and no schema was fetched before: the call is
    refused (fail closed) rather than run unvalidated."""


def require_jsonschema() -> Any:
    """The Draft 2020-12 validator class; a clear ImportError when jsonschema is missing."""
    try:
        from jsonschema import Draft202012Validator
    except ImportError as exc:
        raise ImportError(
            f"Validating tool arguments needs the jsonschema package: {INSTALL_HINT}"
        ) from exc
    return Draft202012Validator


def json_pointer(path) -> str:
    """RFC 6901 pointer of a path of keys and indexes ("" is the whole document)."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


@dataclass
class _Entry:
    versions: dict[str, dict[str, Any]] = field(default_factory=dict)
    fetched_at: float | None = None  # time.monotonic() of the last good answer
    failed_at: float | None = None
    error: str = ""
    validators: dict[str, Any] = field(default_factory=dict)


_cache: dict[tuple[str, str, str], _Entry] = {}
_lock = threading.Lock()


def cache_clear() -> None:
    """Forget every cached contract (the next validated call asks the registry again)."""
    with _lock:
        _cache.clear()


def _fetch(client: Client, name: str) -> dict[str, dict[str, Any]]:
    from agentops_sdk.client import Unavailable

    versions: dict[str, dict[str, Any]] = {}
    for page in range(1, MAX_PAGES + 1):
        query = urlencode({"name": name, "page_size": PAGE_SIZE, "page": page})
        answer = client._request("GET", f"/api/contracts/?{query}")
        try:
            for contract in answer["results"]:
                if contract["name"] == name:
                    versions[str(contract["version"])] = contract
        except (KeyError, TypeError) as exc:
            raise Unavailable(f"unexpected answer from the contract registry ({exc!r})") from exc
        if not answer.get("next"):
            break
    return versions


def _entry(client: Client, name: str) -> _Entry | None:
    """The cached (or freshly fetched) contracts of `name`; None when the registry cannot
    be reached and nothing was fetched before. RequestRefused (a 4xx) propagates."""
    from agentops_sdk.client import Unavailable

    key = (client.base_url, client.key, name)
    now = time.monotonic()
    with _lock:
        entry = _cache.get(key)
    if entry is not None:
        if entry.fetched_at is not None and now - entry.fetched_at < client.contract_ttl:
            return entry
        backoff = min(RETRY_AFTER_FAILURE, client.contract_ttl)
        if entry.failed_at is not None and now - entry.failed_at < backoff:
            return entry if entry.fetched_at is not None else None
    try:
        versions = _fetch(client, name)
    except Unavailable as exc:
        with _lock:
            entry = _cache.setdefault(key, _Entry())
            entry.failed_at, entry.error = now, str(exc)
        return entry if entry.fetched_at is not None else None
    fresh = _Entry(versions=versions, fetched_at=now)
    with _lock:
        _cache[key] = fresh
    return fresh


def unavailable_reason(client: Client, name: str) -> str:
    with _lock:
        entry = _cache.get((client.base_url, client.key, name))
    return entry.error if entry is not None else "the contract registry did not answer"


@dataclass(frozen=True)
class Verdict:
    outcome: str
    pointer: str = ""
    message: str = ""


def check_call(
    client: Client, *, name: str, version: str, arguments: Any, idempotency_key: str
) -> Verdict:
    """The verdict on one call: ok, a violation (same outcome names as the console's
    contract check) or unavailable."""
    entry = _entry(client, name)
    if entry is None:
        return Verdict(UNAVAILABLE, message=unavailable_reason(client, name))
    if not entry.versions:
        return Verdict(NO_CONTRACT, message=f"No contract registered for {name!r}.")
    contract = entry.versions.get(version)
    if contract is None:
        known = ", ".join(sorted(entry.versions))
        return Verdict(
            UNKNOWN_VERSION,
            message=f"{name} has no registered version {version!r} (registered: {known}).",
        )
    validator = entry.validators.get(version)
    if validator is None:
        validator_class = require_jsonschema()
        validator = validator_class(contract.get("arguments_schema") or {})
        entry.validators[version] = validator
    # What is validated is what the span records: the arguments as JSON.
    document = json.loads(json.dumps(arguments, default=str))
    from jsonschema.exceptions import best_match

    error = best_match(validator.iter_errors(document))
    if error is not None:
        return Verdict(ARGUMENTS_INVALID, json_pointer(error.absolute_path), error.message)
    if contract.get("requires_idempotency_key") and not idempotency_key:
        return Verdict(
            IDEMPOTENCY_KEY_MISSING,
            message=f"{name} {version} requires an idempotency key (idempotency_key=…).",
        )
    return Verdict(OK)
