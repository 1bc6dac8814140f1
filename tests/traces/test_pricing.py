import random
import warnings
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from genai_prices import Usage, calc_price, data_snapshot
from genai_prices.types import ModelPrice, TieredPrices

from traces.models import ModelPriceOverride
from traces.pricing import PriceBook, Priced, price_lookup

AT = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
MTOK = Decimal(1_000_000)
TEN_PLACES = Decimal("1e-10")


def packaged(provider_id: str, model_id: str, at: datetime = AT) -> ModelPrice:
    """The rates genai-prices itself holds for one model (USD per Mtok)."""
    providers = {p.id: p for p in data_snapshot.get_snapshot().providers}
    provider = providers[provider_id]
    # Azure serves OpenAI's models at OpenAI's prices: genai-prices falls back to them.
    candidates = [provider, *(providers[f] for f in provider.fallback_model_providers or ())]
    model = next(m for p in candidates for m in p.models if m.id == model_id)
    return model.get_prices(at)


def flat(rate: object) -> Decimal:
    assert isinstance(rate, Decimal), rate
    return rate


def usd(*parts: tuple[int, Decimal]) -> Decimal:
    return (sum(tokens * rate for tokens, rate in parts) / MTOK).quantize(TEN_PLACES)


def price(book: PriceBook | None = None, **kwargs) -> Priced:
    call = {
        "provider": "openai",
        "model": "gpt-4o-mini",
        "at": AT,
        "input_tokens": 0,
        "output_tokens": 0,
        "cached_input_tokens": 0,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
        "reported_cost": None,
        **kwargs,
    }
    return (book or PriceBook()).price(**call)


# --- packaged price data ------------------------------------------------------------


def test_it_prices_a_model_at_its_published_rates():
    # Claude 3.5 Haiku: $0.80 in, $4 out, $0.08 cache read, $1 cache write per Mtok.
    rates = packaged("anthropic", "claude-3-5-haiku-latest")
    assert (rates.input_mtok, rates.output_mtok) == (Decimal("0.8"), Decimal("4"))
    assert (rates.cache_read_mtok, rates.cache_write_mtok) == (Decimal("0.08"), Decimal("1"))

    priced = price(
        provider="anthropic",
        model="claude-3-5-haiku-20241022",
        input_tokens=10_000,  # includes the 2,000 cached and 1,000 written to the cache
        cached_input_tokens=2_000,
        cache_write_tokens=1_000,
        output_tokens=1_000,
    )

    # 7,000 at 0.80 + 2,000 at 0.08 + 1,000 at 1.00 + 1,000 at 4 = 10,760 micro-dollars
    assert priced == Priced(Decimal("0.0107600000"), Decimal("0.0107600000"), "price_data")


def test_it_prices_cached_input_at_the_cache_rate():
    rates = packaged("openai", "gpt-4o")
    assert flat(rates.cache_read_mtok) < flat(rates.input_mtok)

    priced = price(model="gpt-4o", input_tokens=1_000, cached_input_tokens=600, output_tokens=50)

    expected = usd(
        (400, flat(rates.input_mtok)),
        (600, flat(rates.cache_read_mtok)),
        (50, flat(rates.output_mtok)),
    )
    assert priced.cost_usd == expected
    assert priced.source == "price_data"


def test_it_bills_cached_input_at_the_input_rate_when_the_model_has_no_cache_rate():
    rates = packaged("mistral", "mistral-large")
    assert rates.cache_read_mtok is None

    priced = price(
        provider="mistral_ai",
        model="mistral-large-latest",
        input_tokens=1_000,
        cached_input_tokens=600,
        output_tokens=10,
    )

    assert priced.cost_usd == usd((1_000, flat(rates.input_mtok)), (10, flat(rates.output_mtok)))


def test_it_bills_reasoning_at_the_output_rate_when_the_model_has_no_reasoning_rate():
    rates = packaged("openai", "o3-mini")
    assert rates.output_reasoning_mtok is None

    priced = price(model="o3-mini", input_tokens=200, output_tokens=1_000, reasoning_tokens=800)

    assert priced.cost_usd == usd((200, flat(rates.input_mtok)), (1_000, flat(rates.output_mtok)))


def test_it_bills_reasoning_at_its_own_rate_when_the_model_has_one():
    rates = packaged("perplexity", "sonar-deep-research")
    assert flat(rates.output_reasoning_mtok) != flat(rates.output_mtok)

    priced = price(
        provider="perplexity",
        model="sonar-deep-research",
        input_tokens=500,
        output_tokens=1_000,
        reasoning_tokens=400,
    )

    assert priced.cost_usd == usd(
        (500, flat(rates.input_mtok)),
        (600, flat(rates.output_mtok)),
        (400, flat(rates.output_reasoning_mtok)),
    )


def test_it_adds_a_per_request_price():
    rates = packaged("perplexity", "sonar")

    priced = price(provider="perplexity", model="sonar", input_tokens=100, output_tokens=100)

    per_call = flat(rates.requests_kcount) / 1_000
    tokens = usd((100, flat(rates.input_mtok)), (100, flat(rates.output_mtok)))
    assert priced.cost_usd == tokens + per_call


def test_a_dated_snapshot_is_priced_as_its_model():
    rates = packaged("openai", "gpt-4o-mini")

    dated = price(model="gpt-4o-mini-2024-07-18", input_tokens=1_000, output_tokens=500)

    assert dated.cost_usd == usd((1_000, flat(rates.input_mtok)), (500, flat(rates.output_mtok)))
    assert dated == price(model="gpt-4o-mini", input_tokens=1_000, output_tokens=500)


@pytest.mark.parametrize(
    ("provider", "model", "provider_id", "model_id"),
    [
        ("openai", "gpt-4o", "openai", "gpt-4o"),
        ("OpenAI", "gpt-4o", "openai", "gpt-4o"),
        ("", "gpt-4o", "openai", "gpt-4o"),
        ("", "openai/gpt-4o", "openai", "gpt-4o"),
        ("litellm", "openai/gpt-4o", "openai", "gpt-4o"),
        ("azure.ai.openai", "gpt-4o", "azure", "gpt-4o"),
        ("anthropic", "claude-3-5-haiku-20241022", "anthropic", "claude-3-5-haiku-latest"),
        (
            "aws.bedrock",
            "anthropic.claude-3-5-sonnet-20240620-v1:0",
            "aws",
            "regional.anthropic.claude-3-5-sonnet-20240620-v1:0",
        ),
        (
            "",
            "us.anthropic.claude-3-5-sonnet-20240620-v1:0",
            "aws",
            "regional.anthropic.claude-3-5-sonnet-20240620-v1:0",
        ),
        ("gcp.gemini", "gemini-2.0-flash", "google", "gemini-2.0-flash"),
        ("gcp.vertex_ai", "gemini-2.0-flash", "google", "gemini-2.0-flash"),
        ("gcp.vertex_ai", "claude-3-5-sonnet-v2@20241022", "google", "claude-3-5-sonnet"),
        ("x_ai", "grok-3", "x-ai", "grok-3"),
        ("xai", "grok-3", "x-ai", "grok-3"),
        ("mistral_ai", "mistral-large-latest", "mistral", "mistral-large"),
    ],
)
def test_it_maps_otel_provider_names_to_the_price_data(provider, model, provider_id, model_id):
    rates = packaged(provider_id, model_id)

    priced = price(provider=provider, model=model, input_tokens=10_000, output_tokens=1_000)

    expected = usd((10_000, flat(rates.input_mtok)), (1_000, flat(rates.output_mtok)))
    assert priced == Priced(expected, expected, "price_data")
    info = price_lookup(provider, model)
    assert info is not None
    assert (info.provider_id, info.model_id) == (provider_id, model_id)
    assert info.input_per_mtok == rates.input_mtok


def test_a_tier_applies_to_the_whole_call_once_all_input_crosses_it():
    rates = packaged("anthropic", "claude-sonnet-4-5")
    assert isinstance(rates.input_mtok, TieredPrices)
    threshold = rates.input_mtok.tiers[0].start

    def at_tier(rate: TieredPrices, tier: bool) -> Decimal:
        return rate.tiers[0].price if tier else rate.base

    for uncached, tier in ((threshold - 160_000, False), (threshold - 50_000, True)):
        # The 100k cached tokens count toward the threshold: the second call crosses it.
        priced = price(
            provider="anthropic",
            model="claude-sonnet-4-5-20250929",
            input_tokens=uncached + 100_000,
            cached_input_tokens=100_000,
            output_tokens=2_000,
        )
        assert priced.cost_usd == usd(
            (uncached, at_tier(rates.input_mtok, tier)),
            (100_000, at_tier(rates.cache_read_mtok, tier)),
            (2_000, at_tier(rates.output_mtok, tier)),
        )


def test_it_uses_the_price_in_force_at_the_span_start():
    # DeepSeek's off-peak discount applies 16:30-00:30 UTC.
    peak_at = AT.replace(hour=12)
    off_peak_at = AT.replace(hour=20)
    peak, off_peak = (
        packaged("deepseek", "deepseek-chat", peak_at),
        packaged("deepseek", "deepseek-chat", off_peak_at),
    )
    assert peak.input_mtok != off_peak.input_mtok

    for at, rates in ((peak_at, peak), (off_peak_at, off_peak)):
        priced = price(
            provider="deepseek", model="deepseek-chat", at=at, input_tokens=1_000, output_tokens=100
        )
        assert priced.cost_usd == usd(
            (1_000, flat(rates.input_mtok)), (100, flat(rates.output_mtok))
        )


def test_parts_larger_than_their_total_are_taken_as_exclusive():
    # Anthropic's own input_tokens leaves the cache out; Gemini's output leaves thoughts out.
    priced = price(
        provider="anthropic",
        model="claude-3-5-haiku-20241022",
        input_tokens=100,
        cached_input_tokens=5_000,
        output_tokens=10,
    )
    assert priced.cost_usd == usd((100, Decimal("0.8")), (5_000, Decimal("0.08")), (10, Decimal(4)))


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "no-such-model"),
        ("ollama", "llama3.1:8b"),  # unknown host: no guessing a cloud's list price
        ("ibm.watsonx.ai", "ibm/granite-13b-chat-v2"),
        ("", "my-own-finetune"),
        ("openai", ""),
        ("openai", "whisper-1"),  # priced per minute of audio, not per token
    ],
)
def test_tokens_without_a_known_price_are_unpriced_not_free(provider, model):
    priced = price(provider=provider, model=model, input_tokens=1_000, output_tokens=10)

    assert priced == Priced(None, None, "unpriced")


def test_a_span_without_usage_has_no_cost():
    assert price(model="gpt-4o") == Priced(None, None, "")
    assert price(model="") == Priced(None, None, "")


def test_a_cost_the_client_reported_wins_with_the_computed_one_beside_it():
    rates = packaged("openai", "gpt-4o")

    priced = price(
        model="gpt-4o", input_tokens=1_000, output_tokens=100, reported_cost=Decimal("0.05")
    )

    computed = usd((1_000, flat(rates.input_mtok)), (100, flat(rates.output_mtok)))
    assert priced == Priced(Decimal("0.0500000000"), computed, "client")


def test_a_reported_cost_stands_without_a_known_price_or_tokens():
    unknown = price(model="no-such-model", input_tokens=10, reported_cost=Decimal("0.25"))
    assert unknown == Priced(Decimal("0.25"), None, "client")

    no_tokens = price(model="gpt-4o", reported_cost=Decimal("0.123456789012345"))
    assert no_tokens == Priced(Decimal("0.1234567890"), None, "client")


def test_money_is_a_decimal_with_ten_places():
    priced = price(model="gpt-4o-mini", input_tokens=1, output_tokens=1)

    assert isinstance(priced.cost_usd, Decimal)
    assert priced.cost_usd.as_tuple().exponent == -10
    assert priced.cost_usd > 0


def test_price_lookup_says_whether_a_model_is_priced():
    info = price_lookup("openai", "gpt-4o-mini-2024-07-18")
    assert info is not None
    assert info.model_id == "gpt-4o-mini"
    assert info.output_per_mtok == packaged("openai", "gpt-4o-mini").output_mtok

    assert price_lookup("openai", "no-such-model") is None
    assert price_lookup("ollama", "llama3") is None


def test_it_agrees_with_genai_prices_for_every_packaged_model():
    """The fast path mirrors calc_price: cache/reasoning splits, tiers, periods, requests."""
    rnd = random.Random(7)
    book = PriceBook()
    checked = 0
    for provider in data_snapshot.get_snapshot().providers:
        for model in provider.models:
            inp = rnd.choice([10, 5_000, 199_999, 200_001, 300_000, 1_500_000])
            cached = rnd.randint(0, inp)
            write = rnd.randint(0, inp - cached)
            out = rnd.choice([0, 7, 40_000])
            reasoning = rnd.randint(0, out)
            at = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=rnd.randint(0, 3 * 525_600))
            priced = book.price(
                provider=provider.id,
                model=model.id,
                at=at,
                input_tokens=inp,
                output_tokens=out,
                cached_input_tokens=cached,
                cache_write_tokens=write,
                reasoning_tokens=reasoning,
                reported_cost=None,
            )
            if priced.source == "unpriced":  # no token price (per image, per second…)
                continue
            usage = Usage(
                input_tokens=inp,
                cache_read_tokens=cached,
                cache_write_tokens=write,
                output_tokens=out,
                output_reasoning_tokens=reasoning,
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                reference = calc_price(
                    usage, model.id, provider_id=provider.id, genai_request_timestamp=at
                )
            assert priced.cost_usd == reference.total_price.quantize(TEN_PLACES), (
                provider.id,
                model.id,
            )
            checked += 1
    assert checked > 1_000


# --- admin overrides ----------------------------------------------------------------


def override(model: str, *, provider: str = "", effective_from: datetime = AT, **rates):
    rates = {"input_per_mtok": Decimal(1), "output_per_mtok": Decimal(2), **rates}
    return ModelPriceOverride.objects.create(
        provider=provider, model=model, effective_from=effective_from, **rates
    )


@pytest.mark.django_db
def test_loading_the_price_book_is_one_query(django_assert_num_queries):
    override("gpt-4o")
    override("gpt-4o", provider="openai", effective_from=AT - timedelta(days=30))
    override("my-finetune", provider="azure")

    with django_assert_num_queries(1):
        book = PriceBook.load()
    with django_assert_num_queries(0):
        price(book, model="gpt-4o", input_tokens=10, output_tokens=10)
        price(book, model="gpt-4o-mini", input_tokens=10, output_tokens=10)


@pytest.mark.django_db
def test_an_override_applies_from_its_effective_date():
    override("gpt-4o", effective_from=datetime(2026, 1, 1, tzinfo=UTC), input_per_mtok=Decimal(1))
    override("gpt-4o", effective_from=datetime(2026, 3, 1, tzinfo=UTC), input_per_mtok=Decimal(3))
    book = PriceBook.load()
    rates = packaged("openai", "gpt-4o", datetime(2025, 12, 31, tzinfo=UTC))

    def on(day: datetime) -> Priced:
        return price(book, model="gpt-4o", at=day, input_tokens=1_000_000)

    assert on(datetime(2025, 12, 31, 23, 59, tzinfo=UTC)) == Priced(
        flat(rates.input_mtok).quantize(TEN_PLACES),
        flat(rates.input_mtok).quantize(TEN_PLACES),
        "price_data",
    )
    assert on(datetime(2026, 1, 1, tzinfo=UTC)).cost_usd == Decimal(1)
    assert on(datetime(2026, 2, 28, tzinfo=UTC)) == Priced(Decimal(1), Decimal(1), "override")
    assert on(datetime(2026, 3, 1, tzinfo=UTC)).cost_usd == Decimal(3)
    assert on(datetime(2027, 1, 1, tzinfo=UTC)).cost_usd == Decimal(3)


@pytest.mark.django_db
def test_a_blank_provider_override_matches_any_provider_and_unknown_models():
    override("My-Finetune", input_per_mtok=Decimal(4), output_per_mtok=Decimal(8))
    book = PriceBook.load()

    for provider in ("openai", "azure.ai.openai", "ollama", ""):
        priced = price(
            book, provider=provider, model="my-finetune", input_tokens=1_000, output_tokens=500
        )
        assert priced == Priced(usd((1_000, 4), (500, 8)), usd((1_000, 4), (500, 8)), "override")


@pytest.mark.django_db
def test_a_provider_override_applies_to_that_provider_under_any_of_its_names():
    rates = packaged("aws", "regional.anthropic.claude-3-5-sonnet-20240620-v1:0")
    model = "anthropic.claude-3-5-sonnet-20240620-v1:0"
    override(model, provider="aws", input_per_mtok=Decimal("2.5"))
    book = PriceBook.load()

    for provider in ("aws.bedrock", "bedrock", "AWS"):
        priced = price(book, provider=provider, model=model, input_tokens=1_000_000)
        assert priced == Priced(Decimal("2.5"), Decimal("2.5"), "override")
    elsewhere = price(book, provider="", model=model, input_tokens=1_000_000)
    assert elsewhere.source == "price_data"
    assert elsewhere.cost_usd == flat(rates.input_mtok)
    assert price(book, provider="anthropic", model=model, input_tokens=10).source == "unpriced"


@pytest.mark.django_db
def test_a_provider_override_beats_a_blank_provider_one():
    override("gpt-4o", input_per_mtok=Decimal(7), effective_from=AT - timedelta(days=1))
    override(
        "gpt-4o",
        provider="openai",
        input_per_mtok=Decimal(5),
        effective_from=AT - timedelta(days=9),
    )
    book = PriceBook.load()

    assert price(book, model="gpt-4o", input_tokens=1_000_000).cost_usd == Decimal(5)
    assert price(
        book, provider="azure.ai.openai", model="gpt-4o", input_tokens=1_000_000
    ).cost_usd == Decimal(7)


@pytest.mark.django_db
def test_an_override_matches_dated_snapshots_unless_the_snapshot_has_its_own():
    override("GPT-4o-Mini", input_per_mtok=Decimal(1))
    override("gpt-4o-mini-2024-07-18", input_per_mtok=Decimal(2))
    book = PriceBook.load()

    def cost(model: str) -> Decimal | None:
        return price(book, model=model, input_tokens=1_000_000).cost_usd

    assert cost("gpt-4o-mini") == Decimal(1)
    assert cost("gpt-4o-mini-2025-01-01") == Decimal(1)
    assert cost("gpt-4o-mini-2024-07-18") == Decimal(2)


@pytest.mark.django_db
def test_override_cache_and_reasoning_rates_fall_back_to_input_and_output():
    override("model-a", input_per_mtok=Decimal(2), output_per_mtok=Decimal(8))
    override(
        "model-b",
        input_per_mtok=Decimal(2),
        output_per_mtok=Decimal(8),
        cached_input_per_mtok=Decimal("0.5"),
        cache_write_per_mtok=Decimal("2.5"),
        reasoning_per_mtok=Decimal(4),
    )
    book = PriceBook.load()
    usage = {
        "input_tokens": 1_000,
        "cached_input_tokens": 400,
        "cache_write_tokens": 100,
        "output_tokens": 500,
        "reasoning_tokens": 200,
    }

    assert price(book, model="model-a", **usage).cost_usd == usd((1_000, 2), (500, 8))
    assert price(book, model="model-b", **usage).cost_usd == usd(
        (500, 2), (400, Decimal("0.5")), (100, Decimal("2.5")), (300, 8), (200, 4)
    )


@pytest.mark.django_db
def test_a_reported_cost_wins_over_an_override_with_the_override_beside_it():
    override("gpt-4o", input_per_mtok=Decimal(1))
    book = PriceBook.load()

    priced = price(book, model="gpt-4o", input_tokens=1_000_000, reported_cost=Decimal("0.9"))

    assert priced == Priced(Decimal("0.9"), Decimal(1), "client")
