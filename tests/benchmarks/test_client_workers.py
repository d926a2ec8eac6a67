"""A client past one core: requests sharded over worker processes (harness.load.workers).

1. **The mechanism**, against the instant fake on core 1: the same closed-loop load (128 in flight, 32 events per
   request) from one worker on core 0, then from two workers on cores 0 and 1 (the second shares its core with the
   fake, which costs far less per request than the client). Events/s per worker count are reported.
2. **Same measurement**, against the real CPU server: one dynamic case measured with one worker and with two,
   interleaved (1, 2, 1, 2, 1, 2): the counts must be identical and the gated metrics must not differ beyond the
   CPU plan's tolerance (the gate's verdict on 1 vs 2 workers must not be `fail`).

Speed is reported (pytest-benchmark's extra_info and printed lines), never asserted.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.bench.cases import DynamicCase, LoadSettings
from harness.bench.execute import run_dynamic
from harness.bench.from_plan import load_settings
from harness.config.plan import load_plan
from harness.gates.gate import GatePolicy, gate
from harness.load.loops import ClosedLoop
from harness.load.synthetic import random_samples
from harness.load.tokens import Tokens
from harness.load.workers import run_sharded
from harness.server.endpoint import Endpoint
from tests.integration.servers import PLAN, Served, tiny_server

EVENTS = 128
REQUESTS = 6000
IN_FLIGHT = 128


@pytest.mark.parametrize("workers", [1, 2])
def test_events_per_second_grow_with_workers(benchmark: Any, fake_endpoint: Endpoint, workers: int) -> None:
    payloads = [{"prompt": "x", "max_tokens": EVENTS, "stream": True}] * REQUESTS
    cpus = (0, 1)[:workers]

    def run() -> Any:
        return run_sharded(fake_endpoint, "completions", 30.0, 300.0, ClosedLoop(IN_FLIGHT), payloads, workers, cpus)

    sharded = benchmark.pedantic(run, rounds=1, iterations=1)
    records = sharded.records
    assert len(records) == REQUESTS
    assert all(r.ok for r in records), {r.error for r in records}
    assert sum(len(r.content_times) for r in records) == REQUESTS * EVENTS
    assert sorted(i for part in sharded.parts for i in part) == list(range(REQUESTS)), "each request sent once"
    span = max(r.end or 0.0 for r in records) - min(r.sent for r in records)
    numbers = {"workers": workers, "requests_per_s": REQUESTS / span, "events_per_s": REQUESTS * EVENTS / span}
    benchmark.extra_info.update(numbers)
    print(f"\n{workers} worker(s): {numbers['requests_per_s']:.0f} req/s, {numbers['events_per_s']:.0f} events/s")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with tiny_server(tmp_path_factory.mktemp("server")) as server:
        yield server


def test_one_and_two_workers_measure_the_same_case(served: Served, tmp_path: Path) -> None:
    plan = load_plan(PLAN)
    tokens = Tokens.load(served.model_path)
    base: LoadSettings = load_settings(plan)
    case = DynamicCase(request_rate=16.0, num_prompts=64)
    samples = random_samples(tokens, 64, 128, 32, np.random.default_rng(7))
    results: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    for _ in range(3):
        for workers in (1, 2):
            # the plan's placement: every client process on the client's core (the engine has the other)
            settings = dataclasses.replace(base, client_workers=workers, client_cpus=base.client_cpus)
            result = run_dynamic(served.endpoint, tokens, case, settings, samples, "random")
            assert result.config["client_workers"] == workers
            assert result.valid, result.invalid_reasons
            assert len(result.checks["client"]["workers"]) == (0 if workers == 1 else 2)
            results[workers].append(result.metrics)
    for key in ("completed", "total_input_tokens", "total_output_tokens", "failed"):
        assert {m[key] for m in results[1]} == {m[key] for m in results[2]}, key
    policy = GatePolicy(tolerance=plan.gates.tolerance, detect=plan.gates.detect, confidence=0.99)
    for metric in ("output_throughput", "median_ttft_ms", "mean_tpot_ms"):
        verdict = gate(metric, [m[metric] for m in results[1]], [m[metric] for m in results[2]], policy)
        print(f"\n1 vs 2 workers, {metric}: {verdict.message}")
        assert verdict.outcome != "fail", verdict.message
        assert all(math.isfinite(m[metric]) for m in results[2])
