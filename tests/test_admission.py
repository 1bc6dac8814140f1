"""The ingest gate of the server's admission guard (agentops_site/admission.py), driven on
a real event loop: count and weight limits, the queue, its deadline and cancellation."""

from __future__ import annotations

import asyncio
import gzip

from agentops_site.admission import Gate, _decoded_size


def run(coro):
    return asyncio.run(coro)


def test_it_admits_up_to_its_slots_then_refuses_at_once_without_a_queue():
    async def scenario():
        gate = Gate(slots=2, budget=100, queue=0, wait=1)
        assert await gate.enter(1)
        assert await gate.enter(1)
        assert not await gate.enter(1)
        gate.leave(1)
        assert await gate.enter(1)

    run(scenario())


def test_heavy_requests_take_turns_but_one_alone_always_runs():
    async def scenario():
        gate = Gate(slots=4, budget=100, queue=4, wait=0.2)
        assert await gate.enter(1_000)  # over the budget, but alone: admitted
        assert not await gate.enter(80)  # waits 0.2 s for room, then refused
        gate.leave(1_000)
        assert await gate.enter(60)
        assert await gate.enter(40)
        assert not await gate.enter(1)

    run(scenario())


def test_a_waiter_is_admitted_when_a_holder_leaves_first_come_first_served():
    async def scenario():
        gate = Gate(slots=1, budget=100, queue=2, wait=5)
        assert await gate.enter(10)
        order = []

        async def wait_then_record(name):
            assert await gate.enter(10)
            order.append(name)

        first = asyncio.create_task(wait_then_record("first"))
        await asyncio.sleep(0)
        second = asyncio.create_task(wait_then_record("second"))
        await asyncio.sleep(0)
        assert not await gate.enter(10)  # the queue (2) is full: refused at once
        gate.leave(10)
        await first
        assert order == ["first"] and gate.running == 1
        gate.leave(10)
        await second
        assert order == ["first", "second"]

    run(scenario())


def test_a_cancelled_waiter_gives_back_its_place():
    async def scenario():
        gate = Gate(slots=1, budget=100, queue=1, wait=5)
        assert await gate.enter(10)
        waiter = asyncio.create_task(gate.enter(10))
        await asyncio.sleep(0)
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        gate.leave(10)
        assert (gate.running, gate.weight, len(gate.waiters)) == (0, 0, 0)
        assert await gate.enter(10)

    run(scenario())


def test_the_weight_is_the_inflated_size():
    raw = b"x" * 50_000
    gz = gzip.compress(raw)
    assert _decoded_size({"headers": [(b"content-encoding", b"gzip")]}, gz) == 50_000
    assert _decoded_size({"headers": []}, raw) == 50_000
    assert _decoded_size({"headers": [(b"content-encoding", b"deflate")]}, b"abc") > 10**9
