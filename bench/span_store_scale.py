#!/usr/bin/env python3
"""Spans at scale on the two span stores: bytes per span, the 30-day cost-by-model query
and the bulk load rate, on PostgreSQL (traces_span, partitioned by day as deployed) and on
ClickHouse (chDB, the same engine in process, through traces/spanstore/clickhouse.py).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/agentops_h3 \\
        .venv/bin/python bench/span_store_scale.py --spans 1000000 [--runs 5] [--keep]

The same synthetic spans go to both, generated once and streamed in chunks of --chunk
spans (nothing holds all of them in memory): runs of 10 spans (agent root, 4 LLM calls,
5 tool calls) spread over 30 days, 5 agents, 6 models, 3 services. Payloads are of the
size GenAI instrumentation records: LLM spans carry the system prompt, the customer's
message, earlier tool calls and results, knowledge-base snippets and the completion in
gen_ai.prompt.N / gen_ai.completion.N attributes (about 1-4 KB); tool spans carry JSON
arguments and results (an order with its items and shipping history, KB hits); the root
carries the run's input and output; failed spans an exception event with a stack trace.
Text comes from templates with ids, numbers and dates in them (as repetitive as real
traffic). The average raw payload per span is printed. 1% of the spans are re-sent in a
new batch, as an exporter's retry would, so the ClickHouse table holds unmerged
duplicates when the one-row-per-span reads (FINAL, argMax, LIMIT 1 BY) are timed.

PostgreSQL: tables created by `migrate`; the empty `traces_span_legacy` partition of a
fresh database is dropped and one daily partition per day of the data (to the days ahead
that `migrate` made) is created with traces.partitions._create_partition, as production
holds them. Spans are loaded with one COPY per chunk; then VACUUM ANALYZE. Size is
pg_total_relation_size (heap, indexes, TOAST) summed over the partitions / rows. The
rollups (traces_rollup, what the Cost explorer reads) are built from the loaded spans
with one INSERT ... SELECT ... GROUP BY (sums only, empty latency histograms) and the
same 30 days read from them, as SQL and through budgets.selectors.cost_series.
ClickHouse: one insert per chunk (one deduplication token each); size is system.parts
bytes_on_disk / rows, before and after OPTIMIZE FINAL.

"Bulk load rate" is spans per second of the COPY / insert calls alone (generation
excluded): a load rate, not the console's end-to-end ingest rate (bench/ingest_*.py).
Medians of --runs runs. The spans and rollups of the bench project are deleted from
PostgreSQL at the end unless --keep.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from traces.spanstore.clickhouse import SPAN_COLUMNS, ClickHouseSpanStore

AGENTS = ["triage", "refunds", "billing-qa", "escalation", "kb-search"]
MODELS = [
    ("gpt-4o", "openai", Decimal("0.0000025"), Decimal("0.00001")),
    ("gpt-4o-mini", "openai", Decimal("0.00000015"), Decimal("0.0000006")),
    ("claude-sonnet-4", "anthropic", Decimal("0.000003"), Decimal("0.000015")),
    ("claude-haiku-3.5", "anthropic", Decimal("0.0000008"), Decimal("0.000004")),
    ("gemini-2.0-flash", "google", Decimal("0.0000001"), Decimal("0.0000004")),
    ("mistral-large", "mistral", Decimal("0.000002"), Decimal("0.000006")),
]
SERVICES = ["support-agent", "billing-agent", "search-agent"]
TOOLS = ["lookup_order", "refund_order", "search_kb", "send_email", "get_customer"]
SYSTEM_PROMPTS = [
    (
        "You are the support agent of Acme Outdoor, an online shop for camping and hiking "
        "gear. Answer the customer's question using the order history and the knowledge "
        "base articles given below; cite the article id when you use one. Be brief, warm "
        "and precise. Never promise a refund above the policy limit of 200 EUR without a "
        "human agent's approval; never share another customer's data; never invent a "
        "tracking number. When the order is late by more than 5 working days, offer a "
        "voucher of 10 % of the order's total. When the customer is angry, apologise once, "
        "then solve the problem. Use the tools lookup_order, refund_order, search_kb, "
        "send_email and get_customer when you need facts; call at most 4 tools per turn. "
        "Reply in the customer's language. Format: plain text, no markdown, at most 120 "
        "words. If you cannot help, say so and hand over to a human with the reason."
    ),
    (
        "Classify the support ticket below into exactly one of: billing, shipping, "
        "returns, account, product_question, complaint, other. Also extract the order id "
        "(8 digits) if any, the customer's sentiment (positive, neutral, negative) and "
        "the urgency (low, normal, high). Reply with a JSON object with the keys "
        '"category", "order_id", "sentiment", "urgency" and "reason" (one sentence). '
        "Do not add any other text. Examples: 'Where is my tent?' -> shipping; 'I was "
        "charged twice' -> billing; 'The zip of my sleeping bag broke' -> returns."
    ),
    (
        "Summarise the conversation so far for the human agent who takes over. Three "
        "sentences at most: what the customer wants, what was tried and what is left "
        "to do. Mention order ids, amounts and dates exactly as they appear. Do not "
        "speculate about the customer's intent."
    ),
]
USER_SENTENCES = [
    "Hi, my order #{o} still has not arrived.",
    "It was due on {d} and the tracking page shows nothing since {d2}.",
    "I ordered {n} items for a trip that starts on Saturday, so this is urgent.",
    "Can you tell me where the parcel is and when it will arrive?",
    "I was charged {a} EUR twice on my card ending in {c}.",
    "The tent pole arrived broken, I would like a replacement or a refund.",
    "I already wrote to you on {d2} and got no answer.",
    "Please cancel the second item of the order, I do not need it any more.",
    "Is the sleeping bag rated for -10 degrees or only for the comfort range?",
    "My account email changed, can you update it to the new address?",
    "Thanks for your help last time, the voucher worked fine.",
    "If it cannot arrive before Friday I would rather get my money back.",
]
ANSWER_SENTENCES = [
    "Thank you for your patience, and I am sorry for the delay with order #{o}.",
    "I checked the order: it left our warehouse on {d2} with DHL, tracking {t}.",
    "The carrier reports a delay at the regional hub; the new delivery estimate is {d}.",
    "I have issued a refund of {a} EUR to your card; it shows within 3 to 5 working days.",
    "As the order is more than 5 working days late, here is a voucher of 10 %: {v}.",
    "According to article KB-{k}, the comfort range is 2 degrees and the limit -10.",
    "I have updated the email on your account; you will get a confirmation shortly.",
    "I cancelled item {n} of the order; the rest ships as planned.",
    "A replacement pole is on its way, no need to send the broken one back.",
    "I am handing your case to a colleague who can approve a refund above the limit.",
    "Is there anything else I can help you with today?",
]
KB_SNIPPETS = [
    "KB-{k} Delivery times: standard delivery takes 2-4 working days in Germany and "
    "3-7 working days to the rest of the EU. Parcels are handed to DHL or DPD.",
    "KB-{k} Refunds: refunds go back to the original payment method within 3-5 working "
    "days. Orders above 200 EUR need a second approval.",
    "KB-{k} Returns: items can be returned within 30 days, unused and in their original "
    "packaging. Return labels are free for orders above 50 EUR.",
    "KB-{k} Vouchers: a late delivery (over 5 working days) entitles the customer to a "
    "10 % voucher, valid 12 months, not combinable with other offers.",
]
PRODUCTS = [
    ("Trail 2P tent", 249.0),
    ("Down sleeping bag -10", 189.9),
    ("Trekking poles (pair)", 59.0),
    ("Gas stove compact", 34.5),
    ("Rain jacket men M", 129.0),
    ("Headlamp 400 lm", 29.9),
    ("Water filter", 44.0),
    ("Backpack 45 l", 159.0),
]
PROJECT = 1


STACK = (
    'Traceback (most recent call last):\n  File "/app/agent/tools.py", line {l}, in call\n'
    "    return self.client.request(method, url, json=payload, timeout=10)\n"
    '  File "/app/.venv/lib/python3.12/site-packages/httpx/_client.py", line 827, in request\n'
    "    return self.send(request, auth=auth, follow_redirects=follow_redirects)\n"
    '  File "/app/.venv/lib/python3.12/site-packages/httpx/_transports/default.py", line 232\n'
    "    raise mapped_exc(message) from exc\nhttpx.ReadTimeout: timed out after 10.0 s "
    "(request {r})"
)


def _hex(rng: random.Random, n: int) -> str:
    return f"{rng.getrandbits(n * 4):0{n}x}"


def _text(rng: random.Random, pool: list[str], lo: int, hi: int, ctx: dict) -> str:
    return " ".join(
        pool[rng.randrange(len(pool))].format(**ctx) for _ in range(rng.randint(lo, hi))
    )


def _order(rng: random.Random, ctx: dict, t: datetime) -> dict:
    items = []
    for i in range(rng.randint(1, 5)):
        name, price = PRODUCTS[rng.randrange(len(PRODUCTS))]
        items.append(
            {
                "line": i + 1,
                "sku": f"AC-{rng.randrange(10**6):06d}",
                "name": name,
                "qty": rng.randint(1, 3),
                "unit_price": price,
                "currency": "EUR",
            }
        )
    history = [
        {
            "at": f"{t - timedelta(hours=h * 19):%Y-%m-%dT%H:%M:%SZ}",
            "event": e,
            "location": f"DHL hub {rng.choice(['Leipzig', 'Kassel', 'Hamburg', 'Munich'])}",
        }
        for h, e in enumerate(
            ["delivery_delayed", "in_transit", "picked_up", "label_created"][: rng.randint(2, 4)]
        )
    ]
    return {
        "order_id": ctx["o"],
        "customer_id": ctx["user"],
        "status": "in_transit",
        "placed_at": f"{t - timedelta(days=6):%Y-%m-%dT%H:%M:%SZ}",
        "carrier": "DHL",
        "tracking": ctx["t"],
        "eta": ctx["d"],
        "items": items,
        "total": round(sum(x["unit_price"] * x["qty"] for x in items), 2),
        "shipping_history": history,
    }


def _tool_io(rng: random.Random, tool: str, ctx: dict, t: datetime) -> tuple[dict, object]:
    if tool == "lookup_order":
        return {"order_id": ctx["o"], "include_history": True}, _order(rng, ctx, t)
    if tool == "search_kb":
        hits = [
            {
                "id": f"KB-{ctx['k'] + i}",
                "score": round(rng.random(), 3),
                "text": KB_SNIPPETS[rng.randrange(len(KB_SNIPPETS))].format(**ctx),
            }
            for i in range(rng.randint(2, 4))
        ]
        return {"query": _text(rng, USER_SENTENCES, 1, 1, ctx), "top_k": 4}, {"hits": hits}
    if tool == "refund_order":
        return (
            {"order_id": ctx["o"], "amount": ctx["a"], "currency": "EUR", "reason": "late"},
            {"refund_id": f"re_{_hex(rng, 20)}", "status": "pending", "amount": ctx["a"]},
        )
    if tool == "send_email":
        return (
            {
                "to": f"{ctx['user']}@example.com",
                "template": "order_update",
                "body": _text(rng, ANSWER_SENTENCES, 2, 4, ctx),
            },
            {"message_id": f"<{_hex(rng, 24)}@mail.acme.example>", "queued": True},
        )
    return (
        {"customer_id": ctx["user"]},
        {
            "customer_id": ctx["user"],
            "name": "A. Customer",
            "tier": rng.choice(["gold", "std"]),
            "orders": rng.randint(1, 40),
            "since": f"{t - timedelta(days=900):%Y-%m-%d}",
            "email": f"{ctx['user']}@example.com",
            "language": rng.choice(["en", "de", "fr"]),
        },
    )


def generate(n: int, end: datetime, seed: int = 7):
    """Yield (batch number, span dict) for n spans over the 30 days before `end`,
    100 spans per batch."""
    rng = random.Random(seed)
    start = end - timedelta(days=30)
    span_s = 30 * 86400
    runs = n // 10
    for r in range(runs):
        t0 = start + timedelta(seconds=span_s * r / runs + rng.random())
        trace_id = _hex(rng, 32)
        root_id = _hex(rng, 16)
        agent = AGENTS[r % len(AGENTS)]
        service = SERVICES[r % len(SERVICES)]
        session = f"sess-{rng.getrandbits(40):x}"
        user = f"user-{rng.randrange(50_000)}"
        ctx = {
            "o": f"{rng.randrange(10**8):08d}",
            "d": f"{t0 + timedelta(days=2):%Y-%m-%d}",
            "d2": f"{t0 - timedelta(days=3):%Y-%m-%d}",
            "n": rng.randint(1, 5),
            "a": f"{rng.uniform(5, 400):.2f}",
            "c": f"{rng.randrange(10**4):04d}",
            "t": f"JD{rng.randrange(10**12):012d}",
            "v": f"SORRY-{_hex(rng, 8).upper()}",
            "k": rng.randrange(100, 900),
            "user": user,
        }
        question = _text(rng, USER_SENTENCES, 2, 5, ctx)
        resource = {
            "service.name": service,
            "service.version": "1.4.2",
            "deployment.environment": "production",
            "host.name": f"worker-{rng.randrange(12)}",
            "process.pid": rng.randrange(1000, 60000),
            "telemetry.sdk.name": "opentelemetry",
            "telemetry.sdk.language": "python",
            "telemetry.sdk.version": "1.30.0",
        }
        scope = {"name": "opentelemetry.instrumentation.openai", "version": "0.48b0"}
        t = t0
        spans = []
        last_call: tuple[str, str, str] | None = None  # (tool, arguments, result)
        for k in range(10):
            dur = rng.lognormvariate(6.5, 0.8) if k else 0.0
            failed = rng.random() < 0.02
            base = {
                "trace_id": trace_id,
                "span_id": root_id if k == 0 else _hex(rng, 16),
                "parent_span_id": "" if k == 0 else root_id,
                "kind": 1 if k == 0 else 3,
                "service_name": service,
                "agent": agent,
                "agent_version": f"v{r % 2 + 3}",
                "prompt_version": f"p{r % 4}",
                "session_id": session,
                "user_id": user,
                "resource": resource,
                "scope": scope,
                "status": "error" if failed else "ok",
            }
            if failed:
                base["status_message"] = "httpx.ReadTimeout: timed out after 10.0 s"
                base["events"] = [
                    {
                        "name": "exception",
                        "time_unix_nano": int(t.timestamp() * 1e9),
                        "attributes": {
                            "exception.type": "httpx.ReadTimeout",
                            "exception.message": "timed out after 10.0 s",
                            "exception.stacktrace": STACK.format(
                                l=rng.randrange(40, 400), r=_hex(rng, 16)
                            ),
                        },
                    }
                ]
            if k == 0:
                base.update(
                    name=f"invoke_agent {agent}",
                    step="agent",
                    attributes={
                        "gen_ai.operation.name": "invoke_agent",
                        "gen_ai.agent.name": agent,
                        "session.id": session,
                        "user.id": user,
                        "input.value": question,
                        "output.value": _text(rng, ANSWER_SENTENCES, 2, 5, ctx),
                    },
                )
            elif k % 2 == 1 and k < 9:
                model, provider, p_in, p_out = MODELS[rng.randrange(len(MODELS))]
                tin, tout = rng.randrange(200, 6000), rng.randrange(20, 900)
                cost = (tin * p_in + tout * p_out).quantize(Decimal("1e-10"))
                attrs = {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.system": provider,
                    "gen_ai.request.model": model,
                    "gen_ai.response.model": f"{model}-2025-01",
                    "gen_ai.request.temperature": 0.2,
                    "gen_ai.request.max_tokens": 1024,
                    "gen_ai.response.id": f"resp_{_hex(rng, 24)}",
                    "gen_ai.response.finish_reasons": ["stop" if k == 7 else "tool_calls"],
                    "gen_ai.usage.input_tokens": tin,
                    "gen_ai.usage.output_tokens": tout,
                    "server.address": f"api.{provider}.com",
                    "server.port": 443,
                    "gen_ai.prompt.0.role": "system",
                    "gen_ai.prompt.0.content": SYSTEM_PROMPTS[rng.randrange(len(SYSTEM_PROMPTS))],
                    "gen_ai.prompt.1.role": "user",
                    "gen_ai.prompt.1.content": question,
                }
                i = 2
                if last_call is not None:  # the agent loop sends the last tool call back
                    attrs[f"gen_ai.prompt.{i}.role"] = "assistant"
                    attrs[f"gen_ai.prompt.{i}.tool_calls.0.name"] = last_call[0]
                    attrs[f"gen_ai.prompt.{i}.tool_calls.0.arguments"] = last_call[1]
                    attrs[f"gen_ai.prompt.{i + 1}.role"] = "tool"
                    attrs[f"gen_ai.prompt.{i + 1}.content"] = last_call[2]
                    i += 2
                if k >= 5:
                    attrs[f"gen_ai.prompt.{i}.role"] = "user"
                    attrs[f"gen_ai.prompt.{i}.content"] = "\n".join(
                        KB_SNIPPETS[rng.randrange(len(KB_SNIPPETS))].format(**ctx)
                        for _ in range(rng.randint(1, 3))
                    )
                attrs["gen_ai.completion.0.role"] = "assistant"
                if k == 7:
                    attrs["gen_ai.completion.0.content"] = _text(rng, ANSWER_SENTENCES, 2, 7, ctx)
                else:
                    attrs["gen_ai.completion.0.content"] = _text(rng, ANSWER_SENTENCES, 0, 1, ctx)
                    attrs["gen_ai.completion.0.tool_calls.0.name"] = TOOLS[k // 2]
                    attrs["gen_ai.completion.0.tool_calls.0.id"] = f"call_{_hex(rng, 24)}"
                base.update(
                    name=f"chat {model}",
                    step="llm",
                    model=model,
                    provider=provider,
                    input_tokens=tin,
                    output_tokens=tout,
                    cached_input_tokens=tin // 3 if rng.random() < 0.4 else 0,
                    cost_usd=cost,
                    computed_cost_usd=cost,
                    cost_source="price_data",
                    attributes=attrs,
                )
            else:
                tool = TOOLS[rng.randrange(len(TOOLS))]
                call_id = f"call_{_hex(rng, 24)}"
                arguments, result = _tool_io(rng, tool, ctx, t)
                arguments, result = orjson.dumps(arguments).decode(), orjson.dumps(result).decode()
                last_call = (tool, arguments, result)
                base.update(
                    name=f"execute_tool {tool}",
                    step="tool",
                    tool_name=tool,
                    tool_call_id=call_id,
                    tool_arguments=arguments,
                    tool_result=result,
                    attributes={
                        "gen_ai.operation.name": "execute_tool",
                        "gen_ai.tool.name": tool,
                        "gen_ai.tool.call.id": call_id,
                        "gen_ai.tool.type": "function",
                    },
                )
            base["started_at"] = t
            base["ended_at"] = t + timedelta(milliseconds=dur)
            base["duration_ms"] = dur
            base["received_at"] = t + timedelta(seconds=2)
            t = t + timedelta(milliseconds=dur + rng.randrange(5, 50))
            spans.append(base)
        for s in spans:
            yield r // 10, s


def payload_bytes(span: dict) -> tuple[int, int]:
    """(attributes + events + tool arguments + tool result, resource + scope) in bytes,
    as JSON/UTF-8 text."""
    content = (
        len(orjson.dumps(span.get("attributes", {})))
        + len(orjson.dumps(span.get("events", [])))
        + len(span.get("tool_arguments", "").encode())
        + len(span.get("tool_result", "").encode())
    )
    return content, len(orjson.dumps(span["resource"])) + len(orjson.dumps(span["scope"]))


def _pg_value(name: str, span: dict):
    from traces.spanstore.clickhouse import _DEFAULTS, _JSON_DEFAULTS

    if name in _JSON_DEFAULTS:
        return orjson.dumps(span.get(name, _JSON_DEFAULTS[name])).decode()
    if name == "project_id":
        return PROJECT
    return span.get(name, _DEFAULTS.get(name))


def django_setup(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentops_site.settings")
    import django

    django.setup()


def prepare_pg(url: str, first: datetime, last: datetime) -> str:
    """Empty the bench project, and give traces_span the daily partitions production
    holds for [first, last]. Returns what was done."""
    import psycopg
    from django.conf import settings
    from django.db import connection

    from traces import partitions

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM traces_rollup WHERE project_id = %s", [PROJECT])
        conn.execute("DELETE FROM traces_span WHERE project_id = %s", [PROJECT])
        conn.execute(
            "INSERT INTO traces_project (id, slug, name, created_at) VALUES (%s, 'bench-scale',"
            " 'bench', now()) ON CONFLICT DO NOTHING",
            [PROJECT],
        )
    if not partitions.is_partitioned():
        return "traces_span is not partitioned (migration 0011 missing): one table"
    dropped = ""
    legacy = f"{partitions.TABLE}_legacy"
    if any(p.name == legacy for p in partitions.partitions()):
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {legacy})")
            if cursor.fetchone()[0]:
                sys.exit(f"{legacy} holds spans: run the bench on a fresh database")
            cursor.execute(f"ALTER TABLE {partitions.TABLE} DETACH PARTITION {legacy}")
            cursor.execute(f"DROP TABLE {legacy}")
        dropped = f"dropped the empty {legacy}; "
    existing = partitions.partitions()
    day = first.date()
    ahead = datetime.now(UTC).date() + timedelta(days=settings.SPAN_PARTITION_AHEAD_DAYS)
    made = 0
    while day <= max(last.date(), ahead):
        lo = datetime(day.year, day.month, day.day, tzinfo=UTC)
        hi = lo + timedelta(days=1)
        if not any(p.overlaps(lo, hi) for p in existing):
            partitions._create_partition(
                partitions.SPANS, f"{partitions.TABLE}_p{day:%Y%m%d}", lo, hi
            )
            made += 1
        day += timedelta(days=1)
    daily = sum(1 for p in partitions.partitions() if p.name.startswith(f"{partitions.TABLE}_p"))
    connection.close()
    return f"{dropped}created {made} daily partitions ({daily} daily + DEFAULT in all)"


def copy_pg(conn, spans: list[dict]) -> None:
    cols = list(SPAN_COLUMNS)
    with (
        conn.cursor() as cur,
        cur.copy(f"COPY traces_span ({', '.join(cols)}) FROM STDIN") as copy,
    ):
        for span in spans:
            copy.write_row([_pg_value(c, span) for c in cols])


def pg_size(url: str) -> tuple[int, int, int]:
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT count(*) FROM traces_span").fetchone()[0]
        size = (
            conn.execute(
                "SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0) FROM pg_inherits"
                " WHERE inhparent = 'traces_span'::regclass"
            ).fetchone()[0]
            + conn.execute("SELECT pg_total_relation_size('traces_span')").fetchone()[0]
        )
        parts = conn.execute(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'traces_span'::regclass"
        ).fetchone()[0]
    return rows, size, parts


PG_COST_BY_MODEL = """
SELECT date_trunc('day', started_at) AS day, model, sum(cost_usd), sum(input_tokens),
       sum(output_tokens), count(*)
FROM traces_span WHERE project_id = %s AND started_at >= %s AND started_at < %s
GROUP BY 1, 2 ORDER BY 1, 2
"""
PG_TRACE = """
SELECT * FROM traces_span WHERE project_id = %s AND trace_id = %s
  AND started_at >= %s AND started_at <= %s ORDER BY started_at, span_id
"""
# The rollups as traces.rollups folds them (15-minute buckets, the same group fields);
# latency histograms are left empty (the cost read does not use them).
PG_BUILD_ROLLUPS = """
INSERT INTO traces_rollup (project_id, bucket_start, agent, model, service_name,
    agent_version, prompt_version, span_count, trace_count, error_count, run_error_count,
    llm_call_count, input_tokens, output_tokens, cached_input_tokens, reasoning_tokens,
    cost_usd, unpriced_count, span_latency, run_latency, updated_at)
SELECT project_id, date_bin('15 minutes', started_at, TIMESTAMPTZ '2000-01-01 00:00+00'),
    agent, model, service_name, agent_version, prompt_version, count(*),
    count(*) FILTER (WHERE parent_span_id = ''), count(*) FILTER (WHERE status = 'error'),
    count(*) FILTER (WHERE parent_span_id = '' AND status = 'error'),
    count(*) FILTER (WHERE step = 'llm'), sum(input_tokens), sum(output_tokens),
    sum(cached_input_tokens), sum(reasoning_tokens), coalesce(sum(cost_usd), 0),
    count(*) FILTER (WHERE cost_source = 'unpriced'), '{}', '{}', now()
FROM traces_span WHERE project_id = %s
GROUP BY 1, 2, 3, 4, 5, 6, 7
"""
# What budgets.selectors.cost_series sends for the Cost explorer grouped by model.
PG_ROLLUP_COST_BY_MODEL = """
SELECT bucket_start, model, sum(cost_usd), sum(input_tokens), sum(output_tokens),
       sum(trace_count), sum(run_error_count), sum(unpriced_count), sum(llm_call_count)
FROM traces_rollup WHERE project_id = %s AND bucket_start >= %s AND bucket_start < %s
GROUP BY bucket_start, model
"""


def timed(fn, runs: int) -> tuple[float, object, list[float]]:
    times, out = [], None
    for _ in range(runs):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000, out, [round(x * 1000) for x in times]


def _runs(times: list[float]) -> str:
    return "runs " + ", ".join(str(x) for x in times) + " ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--chunk", type=int, default=100_000, help="spans per COPY / insert")
    parser.add_argument("--resend", type=float, default=0.01)
    parser.add_argument("--keep", action="store_true", help="keep the spans in PostgreSQL")
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    use_pg = not args.no_pg
    if use_pg and not url.startswith("postgres"):
        sys.exit("DATABASE_URL must name a PostgreSQL database (or pass --no-pg)")
    n = args.spans - args.spans % 10
    end_gen = datetime.now(UTC).replace(microsecond=0)
    try:
        load = os.getloadavg()
        print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    except OSError:
        pass

    import psycopg

    if use_pg:
        env = {**os.environ, "DATABASE_URL": url}
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True
        )
        django_setup(url)
        what = prepare_pg(url, end_gen - timedelta(days=30, seconds=5), end_gen)
        print(f"PostgreSQL: {what}", flush=True)

    tmp = tempfile.mkdtemp(prefix="span-store-bench-")
    try:
        store = ClickHouseSpanStore(f"chdb://{tmp}")
        store.ensure_schema()
        resend_at = set(random.Random(1).sample(range(n), int(n * args.resend)))
        again: list[dict] = []
        probe: dict = {}
        content = meta = 0
        steps: dict[str, list[int]] = {}
        pg_s = ch_s = 0.0
        first = last = None
        t_all = time.perf_counter()
        conn = psycopg.connect(url, autocommit=True) if use_pg else None
        buf: list[dict] = []

        def flush(i: int) -> None:
            nonlocal pg_s, ch_s
            if conn is not None:
                t = time.perf_counter()
                copy_pg(conn, buf)
                pg_s += time.perf_counter() - t
            t = time.perf_counter()
            store.insert_spans(PROJECT, buf, f"load-{i}", retention_days=400)
            ch_s += time.perf_counter() - t
            buf.clear()

        for i, (batch, span) in enumerate(generate(n, end_gen)):
            span["batch_id"] = batch
            c, m = payload_bytes(span)
            content += c
            meta += m
            steps.setdefault(span["step"], [0, 0])
            steps[span["step"]][0] += 1
            steps[span["step"]][1] += c
            if i in resend_at:
                again.append(span)
            if i == n // 2:
                probe = span
            first = first or span["started_at"]
            last = span["started_at"]
            buf.append(span)
            if len(buf) >= args.chunk:
                flush(i)
                if (i + 1) % 1_000_000 == 0:
                    el = time.perf_counter() - t_all
                    print(
                        f"  {i + 1:,} spans in {el:.0f} s (PostgreSQL COPY {pg_s:.0f} s, "
                        f"ClickHouse insert {ch_s:.0f} s, load {os.getloadavg()[0]:.2f})",
                        flush=True,
                    )
        if buf:
            flush(n)
        total_s = time.perf_counter() - t_all
        print(
            f"generated and loaded {n:,} spans in {total_s:.0f} s "
            f"(generation and payload counting {total_s - pg_s - ch_s:.0f} s)"
        )
        print(
            f"raw payload per span (attributes + events + tool arguments + tool result, JSON): "
            f"{content / n:.0f} bytes average; resource + scope {meta / n:.0f} bytes; by step: "
            + ", ".join(f"{k} {v[1] / v[0]:.0f} B ({v[0]:,})" for k, v in sorted(steps.items()))
        )
        if conn is not None:
            print(
                f"PostgreSQL: bulk load (COPY, {args.chunk:,} spans each) {pg_s:.0f} s = "
                f"{n / pg_s:,.0f} spans/s",
                flush=True,
            )
        print(
            f"ClickHouse: bulk load (insert, {args.chunk:,} spans each) {ch_s:.0f} s = "
            f"{n / ch_s:,.0f} spans/s",
            flush=True,
        )
        end = last + timedelta(seconds=1)
        start = end - timedelta(days=30, seconds=2)
        probe_range = (
            probe["started_at"] - timedelta(minutes=1),
            probe["started_at"] + timedelta(hours=1),
        )

        if conn is not None:
            t = time.perf_counter()
            conn.execute("VACUUM ANALYZE traces_span")
            print(f"PostgreSQL: VACUUM ANALYZE in {time.perf_counter() - t:.0f} s")
            rows, size, parts = pg_size(url)
            print(
                f"PostgreSQL: {rows:,} rows in {parts} partitions, {size:,} bytes "
                f"(heap, TOAST, indexes), {size / rows:.0f} bytes/span",
                flush=True,
            )
            ms, out, times = timed(
                lambda: conn.execute(PG_COST_BY_MODEL, [PROJECT, start, end]).fetchall(),
                args.runs,
            )
            print(
                f"PostgreSQL: 30-day cost by model × day from spans: {ms:.0f} ms median "
                f"({len(out)} rows; {_runs(times)})",
                flush=True,
            )
            pg_total = sum(r[2] or 0 for r in out)
            ms, out, times = timed(
                lambda: conn.execute(
                    PG_TRACE, [PROJECT, probe["trace_id"], *probe_range]
                ).fetchall(),
                args.runs,
            )
            print(f"PostgreSQL: one trace's spans (bounded): {ms:.1f} ms median ({len(out)} rows)")
            t = time.perf_counter()
            made = conn.execute(PG_BUILD_ROLLUPS, [PROJECT]).rowcount
            conn.execute("ANALYZE traces_rollup")
            print(
                f"PostgreSQL: rollups built (INSERT ... SELECT GROUP BY) in "
                f"{time.perf_counter() - t:.0f} s: {made:,} rows",
                flush=True,
            )
            ms, out, times = timed(
                lambda: conn.execute(PG_ROLLUP_COST_BY_MODEL, [PROJECT, start, end]).fetchall(),
                args.runs,
            )
            roll_total = sum(r[2] or 0 for r in out)
            print(
                f"PostgreSQL: 30-day cost by model × 15 min from rollups (the Cost explorer's "
                f"query): {ms:.1f} ms median ({len(out)} rows; {_runs(times)}); total agrees "
                f"with spans: {roll_total == pg_total}",
                flush=True,
            )
            from budgets.selectors import cost_series
            from traces.models import Project

            project = Project.objects.get(pk=PROJECT)
            ms, series, times = timed(
                lambda: cost_series(
                    project=project, start=start, end=end, bucket="1d", tz=UTC, group_by="model"
                ),
                args.runs,
            )
            print(
                f"PostgreSQL: budgets.selectors.cost_series(30 days, 1d, by model) from "
                f"rollups: {ms:.1f} ms median ({len(series.buckets)} buckets; {_runs(times)})",
                flush=True,
            )

        store.insert_spans(PROJECT, again, "resent", retention_days=400)
        stats = store.table_stats()
        print(
            f"ClickHouse: {stats['rows']:,} stored copies ({len(again):,} re-sent), "
            f"{stats['parts']} parts, {stats['bytes_on_disk']:,} bytes, "
            f"{stats['bytes_on_disk'] / stats['rows']:.0f} bytes/span "
            f"(uncompressed {stats['bytes_uncompressed'] / stats['rows']:.0f})",
            flush=True,
        )
        tbl = store.table
        p = {"p": PROJECT, "start": start, "end": end}
        variants = {
            "FINAL": lambda: store.cost_by(PROJECT, start, end, "model", "day"),
            "no dedup (wrong by the re-sent)": lambda: store.cost_by(
                PROJECT, start, end, "model", "day", final=False
            ),
            "argMax per span": lambda: (
                store.client.query(
                    "SELECT toStartOfDay(s) AS d, m, sum(c), count() FROM ("
                    " SELECT argMax(started_at, version) AS s, argMax(model, version) AS m,"
                    " argMax(cost_usd, version) AS c FROM " + tbl + " WHERE project_id = {p:UInt64}"
                    " AND started_at >= {start:DateTime64(6, 'UTC')}"
                    " AND started_at < {end:DateTime64(6, 'UTC')}"
                    " GROUP BY project_id, toDate(started_at), trace_id, span_id)"
                    " GROUP BY d, m ORDER BY d, m",
                    parameters=p,
                ).result_rows
            ),
            "LIMIT 1 BY": lambda: (
                store.client.query(
                    "SELECT toStartOfDay(started_at) AS d, model, sum(cost_usd), count() FROM ("
                    " SELECT started_at, model, cost_usd FROM "
                    + tbl
                    + " WHERE project_id = {p:UInt64}"
                    " AND started_at >= {start:DateTime64(6, 'UTC')}"
                    " AND started_at < {end:DateTime64(6, 'UTC')}"
                    " ORDER BY version DESC"
                    " LIMIT 1 BY project_id, toDate(started_at), trace_id, span_id)"
                    " GROUP BY d, model ORDER BY d, model",
                    parameters=p,
                ).result_rows
            ),
        }
        for label, fn in variants.items():
            ms, out, times = timed(fn, args.runs)
            print(
                f"ClickHouse: 30-day cost by model × day, {label}: {ms:.0f} ms median "
                f"({len(out)} rows; {_runs(times)})",
                flush=True,
            )
        ch_total = sum(r["cost_usd"] or 0 for r in store.cost_by(PROJECT, start, end))
        ms, out, _ = timed(
            lambda: store.trace_spans(PROJECT, probe["trace_id"], *probe_range), args.runs
        )
        print(
            f"ClickHouse: one trace's spans (bounded, FINAL): {ms:.1f} ms median ({len(out)} rows)"
        )
        ms, out, _ = timed(lambda: store.trace_spans(PROJECT, probe["trace_id"]), args.runs)
        print(
            f"ClickHouse: one trace's spans (unbounded, FINAL): {ms:.1f} ms median "
            f"({len(out)} rows)"
        )
        ms, out, _ = timed(lambda: store.batch_spans(PROJECT, ["resent"], ["span_id"]), args.runs)
        print(
            f"ClickHouse: batch_spans of the re-sent batch: {ms:.0f} ms median "
            f"({len(out)} rows, 0 expected)"
        )
        if use_pg:
            print(
                f"cost totals agree: PostgreSQL {pg_total} ClickHouse {ch_total}: "
                f"{pg_total == ch_total}"
            )
        t = time.perf_counter()
        store.optimize()
        stats = store.table_stats()
        print(
            f"ClickHouse after OPTIMIZE FINAL ({time.perf_counter() - t:.1f} s): "
            f"{stats['rows']:,} rows, {stats['bytes_on_disk']:,} bytes, "
            f"{stats['bytes_on_disk'] / stats['rows']:.0f} bytes/span",
            flush=True,
        )
        ms, out, times = timed(
            lambda: store.cost_by(PROJECT, start, end, "model", "day"), args.runs
        )
        print(
            f"ClickHouse: 30-day cost by model × day, FINAL, merged: {ms:.0f} ms median "
            f"({_runs(times)})"
        )
        ms, out, times = timed(
            lambda: store.cost_by(PROJECT, start, end, "model", "day", final=False), args.runs
        )
        print(
            f"ClickHouse: 30-day cost by model × day, no FINAL, merged: {ms:.0f} ms median "
            f"({_runs(times)})"
        )
        cols = store.client.query(
            "SELECT name, sum(data_compressed_bytes) AS b FROM system.columns"
            " WHERE database = {d:String} AND table = 'spans'"
            " GROUP BY name ORDER BY b DESC LIMIT 8",
            parameters={"d": store.database},
        ).result_rows
        print(
            "ClickHouse: largest columns (bytes/span): "
            + ", ".join(f"{n} {b / stats['rows']:.0f}" for n, b in cols)
        )
        load = os.getloadavg()
        print(f"load average at end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if use_pg and not args.keep:
            with psycopg.connect(url, autocommit=True) as c:
                c.execute("DELETE FROM traces_rollup WHERE project_id = %s", [PROJECT])
                c.execute("DELETE FROM traces_span WHERE project_id = %s", [PROJECT])


if __name__ == "__main__":
    main()
