"""The client's own ceiling: how fast can it send and read streams on one core before it falls behind?

A fake server in its own process, pinned to the other core, answers every request at once with 16 content
events; the client (this process, pinned to one core) runs the open loop at rising rates. Each rate reports
requests/s, content events/s and the p99 schedule lag (pytest-benchmark's extra_info and one printed line).
Assertions check behaviour only: every request answered, every event counted. Read the ceiling off the report:
the highest rate whose p99 lag stays within 1 ms.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from harness.client.http import HTTPClient
from harness.client.openai import RequestRecord, send_request
from harness.load.loops import Payload, frozen_gc, open_loop
from harness.load.schedule import arrival_offsets
from harness.metrics.health import lags, send_rate
from harness.metrics.stats import percentile
from harness.server.endpoint import Endpoint

EVENTS = 16
SECONDS = 2.0
RATES = [250, 500, 1000, 2000, 3000, 4000]


@pytest.fixture
def one_core() -> Iterator[None]:
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {0})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def run_at(endpoint: Endpoint, rate: float) -> list[RequestRecord]:
    count = int(rate * SECONDS)
    offsets = arrival_offsets(count, rate, 1.0, np.random.default_rng(0))
    payloads: list[Payload] = [{"prompt": "x", "max_tokens": EVENTS, "stream": True}] * count

    async def go() -> list[RequestRecord]:
        async with HTTPClient(endpoint.base_url) as session:

            async def send(body: Payload) -> RequestRecord:
                return await send_request(session, endpoint, "completions", body, 30.0)

            return await open_loop(send, payloads, offsets, deadline_s=120.0)

    with frozen_gc():
        return asyncio.run(go())


@pytest.mark.parametrize("rate", RATES)
def test_client_ceiling(benchmark: Any, fake_endpoint: Endpoint, one_core: None, rate: int) -> None:
    records: list[RequestRecord] = benchmark.pedantic(run_at, args=(fake_endpoint, rate), rounds=1, iterations=1)
    assert all(r.ok for r in records), {r.error for r in records}
    assert sum(len(r.content_times) for r in records) == len(records) * EVENTS
    span = max(r.content_times[-1] for r in records) - min(r.sent for r in records)
    lag = percentile(lags(records), 99)
    assert lag is not None
    numbers = {
        "requested_rate": rate,
        "achieved_send_rate": send_rate(records),
        "requests_per_s": len(records) / span,
        "events_per_s": len(records) * EVENTS / span,
        "p99_schedule_lag_ms": lag * 1000.0,
    }
    benchmark.extra_info.update(numbers)
    print(
        f"\nclient ceiling @ {rate} req/s: sent {numbers['achieved_send_rate']:.0f} req/s, "
        f"{numbers['requests_per_s']:.0f} req/s and {numbers['events_per_s']:.0f} events/s answered, "
        f"p99 lag {numbers['p99_schedule_lag_ms']:.2f} ms"
    )
