"""Model call → cost in USD (Decimal).

The contract other modules rely on:

    PriceBook.load() -> PriceBook
        One query: the admin's ModelPriceOverride rows. Built once per ingest request.

    PriceBook.price(*, provider, model, at, input_tokens, output_tokens,
                    cached_input_tokens, cache_write_tokens, reasoning_tokens,
                    reported_cost) -> Priced
        input_tokens includes cached input and output_tokens includes reasoning
        (OTel semantics). A reported cost is the effective cost (source "client") with
        the computed one beside it. Tokens but no known price → source "unpriced",
        cost None (never 0). No tokens and no reported cost → source "" and None.

Packaged prices come from `genai-prices`. Its `calc_price` resolves the provider and
model on every call and re-validates the price table (~100 µs); ingestion prices
thousands of spans a second, so here a (provider, model) pair is resolved once (an LRU,
misses included) to the model's price periods, each compiled into per-token Decimal
rates, and a span costs a handful of Decimal multiplications. The arithmetic mirrors
genai-prices' (tests/traces/test_pricing.py checks it against `calc_price` model by
model): cache and reasoning tokens are split out of input/output only when the model
has a rate for them, otherwise they are billed at the input/output rate; a tiered rate
applies to all tokens once the whole input (cache included) crosses the tier; a
per-request price is added per call; time-dependent prices (new list prices from a
date, off-peak hours) are chosen by the span's start time.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import TypeAlias

from django.conf import settings
from genai_prices import data_snapshot
from genai_prices.types import ModelInfo, ModelPrice, TieredPrices

from traces.conventions import MAX_COST
from traces.models import CostSource, ModelPriceOverride


@dataclass(frozen=True, slots=True)
class Priced:
    cost_usd: Decimal | None
    computed_cost_usd: Decimal | None
    source: str  # "", "client", "price_data", "override", "unpriced"


# The DB column is decimal(20,10): ten places, under 10^10 dollars.
_MONEY = Decimal("1e-10")
# A span's cost, reported or computed, above conventions.MAX_COST ($10,000) is not a cost;
# the cap is what keeps trace, rollup and budget sums inside their columns.
_MONEY_MAX = MAX_COST
_PER_MTOK = Decimal(1_000_000)
_PER_KREQ = Decimal(1_000)

_NONE = Priced(None, None, CostSource.NONE.value)
_UNPRICED = Priced(None, None, CostSource.UNPRICED.value)
_CLIENT = CostSource.CLIENT.value
_PRICE_DATA = CostSource.PRICE_DATA.value
_OVERRIDE = CostSource.OVERRIDE.value

# Provider names as they arrive (gen_ai.provider.name, the deprecated gen_ai.system,
# OpenInference llm.provider / llm.system), lower-cased → genai-prices provider id.
# None means "no provider": genai-prices finds the model by name. A name neither here
# nor known to genai-prices (its ids and its own provider_match rules) is an unknown
# provider: its spans are unpriced unless an override names the model, because pricing
# a self-hosted or unknown host at some cloud's list price would be a wrong number.
PROVIDER_ALIASES: dict[str, str | None] = {
    "": None,
    "litellm": None,  # a gateway, not a host; the model name says who served it
    "openai": "openai",
    "anthropic": "anthropic",
    "aws.bedrock": "aws",
    "aws_bedrock": "aws",
    "bedrock": "aws",
    "amazon_bedrock": "aws",
    "aws": "aws",
    "azure.ai.openai": "azure",  # genai-prices' own rule would read this as OpenAI
    "azure.ai.inference": "azure",
    "az.ai.openai": "azure",  # the names before semconv 1.30
    "az.ai.inference": "azure",
    "azure_openai": "azure",
    "azure": "azure",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "vertex_ai": "google",
    "vertexai": "google",
    "gemini": "google",
    "google": "google",
    "x_ai": "x-ai",
    "xai": "x-ai",
    "x-ai": "x-ai",
    "mistral_ai": "mistral",
    "mistralai": "mistral",
    "mistral": "mistral",
    "cohere": "cohere",
    "deepseek": "deepseek",
    "groq": "groq",
    "perplexity": "perplexity",
    "together_ai": "together",
    "together-ai": "together",
    "together": "together",
    "fireworks_ai": "fireworks",
    "fireworks": "fireworks",
    "openrouter": "openrouter",
    "moonshot": "moonshotai",
    "moonshotai": "moonshotai",
}

# Bedrock model ids ("anthropic.claude-…-v1:0", with an optional cross-region
# "us."/"eu."/"apac."/"global." prefix) are priced under AWS even when the provider is
# missing; under no provider genai-prices would look for them at Anthropic and miss.
_BEDROCK_ID = re.compile(
    r"^(?:[a-z]{2,6}(?:-gov)?\.)?"
    r"(?:anthropic|amazon|meta|mistral|cohere|ai21|deepseek|openai|qwen|writer|twelvelabs)\.",
)
# A dated snapshot suffix: gpt-4o-mini-2024-07-18, claude-3-5-haiku-20241022, …@20241022.
_DATE_SUFFIX = re.compile(r"[-@](?:\d{4}-\d{2}-\d{2}|\d{8})$")


# ---------------------------------------------------------------------------
# Compiled rates

# A rate is USD per token: a Decimal, or for a tiered price (base, ((start, rate), …))
# with the tiers highest first.
_Rate: TypeAlias = Decimal | tuple[Decimal, tuple[tuple[int, Decimal], ...]] | None


@dataclass(frozen=True, slots=True)
class _Rates:
    input: _Rate
    output: _Rate
    cache_read: _Rate
    cache_write: _Rate
    reasoning: _Rate
    per_request: Decimal | None
    tiered: bool
    # False when the model has no token price at all (priced per second, per image…):
    # such a span is unpriced, not $0.
    token_priced: bool

    def cost(self, inp: int, out: int, cached: int, write: int, reasoning: int) -> Decimal:
        """USD for one call; input includes cache reads/writes, output includes reasoning."""
        # A part is split from its total only when it has a rate of its own (as in
        # genai-prices); otherwise it is billed within the total, at the total's rate.
        if self.tiered:
            return self._tiered_cost(inp, out, cached, write, reasoning)
        total = Decimal(0)
        uncached = inp
        if self.cache_read is not None:
            uncached -= cached
            total += self.cache_read * cached  # type: ignore[operator]
        if self.cache_write is not None:
            uncached -= write
            total += self.cache_write * write  # type: ignore[operator]
        if self.input is not None:
            total += self.input * uncached  # type: ignore[operator]
        plain = out
        if self.reasoning is not None:
            plain -= reasoning
            total += self.reasoning * reasoning  # type: ignore[operator]
        if self.output is not None:
            total += self.output * plain  # type: ignore[operator]
        if self.per_request is not None:
            total += self.per_request
        return total

    def _tiered_cost(self, inp: int, out: int, cached: int, write: int, reasoning: int) -> Decimal:
        # The tier is chosen by the whole input, cache included, for every part.
        flat = _Rates(
            *(_tier_rate(r, inp) for r in (self.input, self.output)),
            *(_tier_rate(r, inp) for r in (self.cache_read, self.cache_write, self.reasoning)),
            per_request=self.per_request,
            tiered=False,
            token_priced=self.token_priced,
        )
        return flat.cost(inp, out, cached, write, reasoning)


def _tier_rate(rate: _Rate, total_input: int) -> Decimal | None:
    if rate is None or isinstance(rate, Decimal):
        return rate
    base, tiers = rate  # type: ignore[misc]
    # A "cliff": past a tier's start the whole call is billed at that tier's rate.
    for start, tier_rate in tiers:
        if total_input > start:
            return tier_rate
    return base


def _per_token(price: Decimal | TieredPrices | None) -> _Rate:
    if price is None:
        return None
    if isinstance(price, TieredPrices):
        tiers = tuple((t.start, t.price / _PER_MTOK) for t in reversed(price.tiers))
        return (price.base / _PER_MTOK, tiers)
    return price / _PER_MTOK


def _compile(mp: ModelPrice) -> _Rates:
    get = mp.__dict__.get  # unset price keys are absent, not None
    input_mtok = get("input_mtok")
    output_mtok = get("output_mtok")
    requests = get("requests_kcount")
    parts = (
        input_mtok,
        output_mtok,
        get("cache_read_mtok"),
        get("cache_write_mtok"),
        get("output_reasoning_mtok"),
    )
    rates = [_per_token(p) for p in parts]
    return _Rates(
        *rates,
        per_request=requests / _PER_KREQ if isinstance(requests, Decimal) else None,
        tiered=any(isinstance(p, TieredPrices) for p in parts),
        token_priced=input_mtok is not None or output_mtok is not None,
    )


@dataclass(frozen=True, slots=True)
class _Model:
    """A packaged model's prices, compiled: periods newest first, then the default."""

    provider_id: str
    model_id: str
    model_name: str
    default: _Rates
    # ((constraint, rates), …): genai-prices takes the last active conditional price.
    periods: tuple[tuple[object, _Rates], ...]

    def rates_at(self, at: datetime) -> _Rates:
        for constraint, rates in self.periods:
            if constraint is None or constraint.active(at):  # type: ignore[attr-defined]
                return rates
        return self.default


def _compile_model(provider_id: str, info: ModelInfo) -> _Model:
    # Price variants (service tiers: flex, priority…) need a request context spans do
    # not carry; the standard price applies, as in genai-prices without price_context.
    if isinstance(info.prices, ModelPrice):
        return _Model(provider_id, info.id, info.name or info.id, _compile(info.prices), ())
    periods = tuple((c.constraint, _compile(c.prices)) for c in reversed(info.prices))
    default = _compile(info.prices[0].prices)
    return _Model(provider_id, info.id, info.name or info.id, default, periods)


# ---------------------------------------------------------------------------
# Resolution (cached)

_snapshot_seen: object = None


def _check_snapshot() -> None:
    """Drop cached resolutions when genai-prices' data was swapped (UpdatePrices)."""
    global _snapshot_seen
    snapshot = data_snapshot.get_snapshot()
    if snapshot is not _snapshot_seen:
        _resolve.cache_clear()
        _provider.cache_clear()
        _snapshot_seen = snapshot


@lru_cache(maxsize=1024)
def _provider(raw: str) -> tuple[str, str | None, bool]:
    """Provider as sent → (key for overrides, genai-prices id or None, priceable by data)."""
    name = raw.strip().lower()
    if name in PROVIDER_ALIASES:
        pid = PROVIDER_ALIASES[name]
        return (pid or name, pid, True)
    found = data_snapshot.find_provider_by_id(data_snapshot.get_snapshot().providers, name)
    if found is not None:
        return (found.id, found.id, True)
    return (name, None, False)


def _find(provider_id: str | None, model: str) -> _Model | None:
    snapshot = data_snapshot.get_snapshot()
    try:
        provider, info = snapshot.find_provider_model(model, None, provider_id, None)
    except LookupError:
        return None
    return _compile_model(provider.id, info)


@lru_cache(maxsize=4096)
def _resolve(provider_id: str | None, model: str) -> _Model | None:
    """(genai-prices provider id or None, lower-cased model) → compiled prices, or None."""
    if found := _find(provider_id, model):
        return found
    if "/" in model:
        # "openai/gpt-4o", the LiteLLM / OpenRouter / gateway spelling: the prefix names
        # the provider. The name as sent was tried first: OpenRouter's ids look like this.
        prefix, rest = model.split("/", 1)
        if provider_id is not None:
            return _find(provider_id, rest)
        prefix_id = PROVIDER_ALIASES.get(prefix)
        if prefix_id and (found := _find(prefix_id, rest)):
            return found
        return _find("openrouter", model) or _find(None, rest)
    if provider_id is None and _BEDROCK_ID.match(model):
        return _find("aws", model)
    return None


@lru_cache(maxsize=4096)
def _undated(model: str) -> str:
    return _DATE_SUFFIX.sub("", model)


@dataclass(frozen=True, slots=True)
class PriceInfo:
    """What the packaged price data says about a model, for display (USD per Mtok)."""

    provider_id: str
    model_id: str
    model_name: str
    input_per_mtok: Decimal | None
    output_per_mtok: Decimal | None
    cached_input_per_mtok: Decimal | None
    cache_write_per_mtok: Decimal | None
    reasoning_per_mtok: Decimal | None
    tiered: bool


def price_lookup(provider: str, model: str, *, at: datetime | None = None) -> PriceInfo | None:
    """Is this model priced by the packaged data, and at what rates (base tier)?

    None when the model is unknown, its provider is unknown, or it has no token price.
    Overrides are not consulted: the admin lists those itself. Cached, so cheap.
    """
    _check_snapshot()
    _, provider_id, priceable = _provider(provider or "")
    found = _resolve(provider_id, model.strip().lower()) if priceable and model else None
    if found is None:
        return None
    rates = found.rates_at(at or datetime.now(UTC))
    if not rates.token_priced:
        return None

    def mtok(rate: _Rate) -> Decimal | None:
        if rate is None:
            return None
        base = rate if isinstance(rate, Decimal) else rate[0]  # type: ignore[index]
        per_mtok = (base * _PER_MTOK).normalize()
        # normalize() writes 10 as 1E+1; an admin page wants 10.
        return per_mtok.quantize(1) if per_mtok == per_mtok.to_integral() else per_mtok

    return PriceInfo(
        provider_id=found.provider_id,
        model_id=found.model_id,
        model_name=found.model_name,
        input_per_mtok=mtok(rates.input),
        output_per_mtok=mtok(rates.output),
        cached_input_per_mtok=mtok(rates.cache_read),
        cache_write_per_mtok=mtok(rates.cache_write),
        reasoning_per_mtok=mtok(rates.reasoning),
        tiered=rates.tiered,
    )


# ---------------------------------------------------------------------------
# The price book


_book_cache: dict[str, tuple[float, PriceBook]] = {}


class PriceBook:
    """Prices for one ingest request: the admin's overrides over the packaged data.

    Overrides (ModelPriceOverride) match the model case-insensitively, and also match a
    dated snapshot of it (an override for "gpt-4o-mini" prices "gpt-4o-mini-2024-07-18";
    "-YYYY-MM-DD", "-YYYYMMDD" and "@YYYYMMDD" suffixes). The provider matches through
    the same aliases as the price data ("aws", "bedrock" and "aws.bedrock" are one);
    blank matches any provider. Most specific first: the exact model before its undated
    name, and a provider's own override before a blank-provider one; among those, the
    one with the latest effective_from not after the span's start wins. An override
    applies even where the packaged data has no price or the provider is unknown.
    """

    __slots__ = ("_overrides",)

    def __init__(self, overrides: dict[str, list[tuple[str, datetime, _Rates]]] | None = None):
        # model (lower-cased) → [(provider key or "", effective_from, rates)], in the
        # order they are tried: the provider's own first, then blank; latest first.
        self._overrides = overrides or {}

    @classmethod
    def load(cls) -> PriceBook:
        """The current book. The overrides are read at most every
        PRICE_OVERRIDES_CACHE_SECONDS per process: reading them was a query on every
        ingest request, and a new override may well take a few seconds to apply."""
        _check_snapshot()
        ttl = settings.PRICE_OVERRIDES_CACHE_SECONDS
        now = time.monotonic()
        cached = _book_cache.get("book")
        if cached is not None and now - cached[0] < ttl:
            return cached[1]
        book = cls._read()
        if ttl > 0:
            _book_cache["book"] = (now, book)
        return book

    @classmethod
    def _read(cls) -> PriceBook:
        overrides: dict[str, list[tuple[str, datetime, _Rates]]] = {}
        for row in ModelPriceOverride.objects.all():
            provider_key = _provider(row.provider)[0] if row.provider.strip() else ""
            overrides.setdefault(row.model.strip().lower(), []).append(
                (provider_key, row.effective_from, _override_rates(row))
            )
        for candidates in overrides.values():
            candidates.sort(key=lambda c: c[1], reverse=True)
            candidates.sort(key=lambda c: c[0] == "")  # stable: dates stay latest first
        return cls(overrides)

    def price(
        self,
        *,
        provider: str,
        model: str,
        at: datetime | None,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cached_input_tokens: int = 0,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
        reported_cost: Decimal | None = None,
    ) -> Priced:
        inp = max(input_tokens or 0, 0)
        out = max(output_tokens or 0, 0)
        cached = max(cached_input_tokens or 0, 0)
        write = max(cache_write_tokens or 0, 0)
        reasoning = max(reasoning_tokens or 0, 0)
        # A cost beyond the per-span cap (negative, NaN, > $10,000) is garbage, not a cost.
        if reported_cost is not None:
            reported_cost = _money(reported_cost)

        if not (inp or out or cached or write or reasoning):
            if reported_cost is None:
                return _NONE
            return Priced(reported_cost, None, _CLIENT)

        # Parts larger than their total mean the client sent them exclusive (Anthropic's
        # input_tokens leaves out cache reads and writes; Gemini's candidates leave out
        # thoughts): the total is then the sum.
        if cached + write > inp:
            inp += cached + write
        if reasoning > out:
            out += reasoning

        computed, source = self._compute(
            provider or "", model or "", at, inp, out, cached, write, reasoning
        )
        if reported_cost is not None:
            return Priced(reported_cost, computed, _CLIENT)
        if computed is None:
            return _UNPRICED
        return Priced(computed, computed, source)

    def _compute(
        self,
        provider: str,
        model: str,
        at: datetime | None,
        inp: int,
        out: int,
        cached: int,
        write: int,
        reasoning: int,
    ) -> tuple[Decimal | None, str]:
        model_key = model.strip().lower()
        if not model_key:
            return None, ""
        provider_key, provider_id, priceable = _provider(provider)
        at = at or datetime.now(UTC)
        if self._overrides and (rates := self._override(provider_key, model_key, at)):
            return _money(rates.cost(inp, out, cached, write, reasoning)), _OVERRIDE
        if not priceable:
            return None, ""
        found = _resolve(provider_id, model_key)
        if found is None:
            return None, ""
        rates = found.default if not found.periods else found.rates_at(at)
        if not rates.token_priced:
            return None, ""
        return _money(rates.cost(inp, out, cached, write, reasoning)), _PRICE_DATA

    def _override(self, provider_key: str, model_key: str, at: datetime) -> _Rates | None:
        for key in (model_key, _undated(model_key)):
            for override_provider, effective_from, rates in self._overrides.get(key, ()):
                if override_provider in ("", provider_key) and effective_from <= at:
                    return rates
        return None


def _money(amount: Decimal) -> Decimal | None:
    if amount.is_finite() and 0 <= amount <= _MONEY_MAX:
        return amount.quantize(_MONEY)
    return None


def _override_rates(row: ModelPriceOverride) -> _Rates:
    def per_token(value: Decimal | None, fallback: Decimal) -> Decimal:
        return (fallback if value is None else Decimal(value)) / _PER_MTOK

    inp = Decimal(row.input_per_mtok)
    out = Decimal(row.output_per_mtok)
    return _Rates(
        input=inp / _PER_MTOK,
        output=out / _PER_MTOK,
        cache_read=per_token(row.cached_input_per_mtok, inp),
        cache_write=per_token(row.cache_write_per_mtok, inp),
        reasoning=per_token(row.reasoning_per_mtok, out),
        per_request=None,
        tiered=False,
        token_priced=True,
    )
