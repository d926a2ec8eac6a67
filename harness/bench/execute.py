"""Run one measurement (one window) of a benchmark case against a served model (harness.bench.measure repeats it).

The sequence is the same for every case: check every request fits the server's context, snapshot /metrics,
run the loop (closed or open) under the case deadline, snapshot again, then compute the serving metrics, the
client's health, the token audit and the server signals into a CaseResult. Nothing here decides pass or fail:
an invalid run (the client fell behind) says so in the result.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import numpy as np

from harness.bench.cases import DynamicCase, LoadSettings, StaticCase, check_fits
from harness.bench.protocol import (
    stream,
)
from harness.client.http import BrokenResponse, Head, HTTPClient, NoConnection, NoProgress
from harness.client.openai import RequestRecord, send_request
from harness.errors import ServerStopped
from harness.load.loops import ClosedLoop, LoopShape, OpenLoop, Payload, frozen_gc
from harness.load.samples import Sample, payload
from harness.load.schedule import arrival_offsets, realised_rate
from harness.load.synthetic import random_samples
from harness.load.tokens import Tokens
from harness.load.workers import run_sharded
from harness.metrics.audit import Asked, token_audit
from harness.metrics.clock import server_clock
from harness.metrics.health import client_health
from harness.metrics.serving import SLO, completed, per_token_unmeasurable, summarise
from harness.metrics.signals import server_signals
from harness.metrics.spec import acceptance_summary
from harness.results.case import CaseResult
from harness.runtime.affinity import pinned
from harness.server.endpoint import Endpoint
from harness.server.prometheus import scrape

Loop = Callable[[Callable[[Payload], Awaitable[RequestRecord]], list[Payload]], Awaitable[list[RequestRecord]]]


def _send_with(
    client: HTTPClient, endpoint: Endpoint, settings: LoadSettings
) -> Callable[[Payload], Awaitable[RequestRecord]]:
    async def send(body: Payload) -> RequestRecord:
        return await send_request(client, endpoint, settings.route, body, settings.request_timeout_s)

    return send


HEALTH_PROBE_S = 5.0  # how long /health may take when a failure makes us ask whether the server is still there


async def _healthy(client: HTTPClient, endpoint: Endpoint) -> bool:
    def ignored(head: Head) -> Callable[[bytes, float], None]:
        return lambda data, now: None

    try:
        probe = client.request("GET", "/health", None, endpoint.headers(), ignored, HEALTH_PROBE_S)
        return (await asyncio.wait_for(probe, HEALTH_PROBE_S)).status == 200
    except (NoConnection, NoProgress, BrokenResponse, asyncio.TimeoutError):
        return False


async def _drive(
    endpoint: Endpoint, settings: LoadSettings, payloads: list[Payload], loop: Loop, case_id: str
) -> list[RequestRecord]:
    """Run `loop` over `payloads`. When a request times out or is refused and /health fails too, the server has
    stopped: the requests not yet sent are not sent, and ServerStopped ends the case once those in flight end."""
    stopped: str | None = None
    done = 0
    async with HTTPClient(endpoint.base_url, settings.request_timeout_s) as client:  # the loop bounds concurrency
        send = _send_with(client, endpoint, settings)

        async def guarded(body: Payload) -> RequestRecord:
            nonlocal stopped, done
            if stopped is not None:
                return RequestRecord(error="not_sent", error_detail=f"not sent: {stopped}")
            record = await send(body)
            if record.error in ("timeout", "connection") and stopped is None and not await _healthy(client, endpoint):
                stopped = f"{record.error} ({record.error_detail}), and {endpoint.url('/health')} does not answer"
            done += 1
            if settings.progress is not None:
                settings.progress(case_id, done, len(payloads))
            return record

        records = await loop(guarded, payloads)
    if stopped is not None:
        sent = sum(r.error != "not_sent" for r in records)
        raise ServerStopped(f"{case_id}: the server stopped answering after {sent} requests: {stopped}")
    return records


def _records(
    endpoint: Endpoint, settings: LoadSettings, payloads: list[Payload], shape: LoopShape, case_id: str
) -> tuple[list[RequestRecord], list[list[int]]]:
    """Send `payloads` with `shape`: in this process, or over `client-workers` worker processes (their parts)."""
    if settings.client_workers > 1:
        sharded = run_sharded(
            endpoint,
            settings.route,
            settings.request_timeout_s,
            settings.case_deadline_s,
            shape,
            payloads,
            settings.client_workers,
            settings.client_cpus,
        )
        return sharded.records, sharded.parts

    async def loop(send: Callable[[Payload], Awaitable[RequestRecord]], bodies: list[Payload]) -> list[RequestRecord]:
        return await shape.run(send, bodies, settings.case_deadline_s)

    with frozen_gc(), pinned(settings.client_cpus):
        return asyncio.run(_drive(endpoint, settings, payloads, loop, case_id)), []


def _worker_health(
    records: list[RequestRecord], parts: list[list[int]], scheduled_rate: float | None, settings: LoadSettings
) -> tuple[list[dict[str, Any]], list[str]]:
    """The self-check of each worker on its own requests (its share of the schedule's rate)."""
    checks, reasons = [], []
    for w, indices in enumerate(parts):
        share = None if scheduled_rate is None else scheduled_rate * len(indices) / len(records)
        health = client_health([records[i] for i in indices], share, settings.limits)
        checks.append({"valid": health.valid, "requests": len(indices), **health.numbers})
        reasons += [f"worker {w}: {reason}" for reason in health.reasons]
    return checks, reasons


def measure(
    endpoint: Endpoint,
    tokens: Tokens,
    samples: Sequence[Sample],
    settings: LoadSettings,
    shape: LoopShape,
    suite: str,
    case_id: str,
    config: dict[str, Any],
    scheduled_rate: float | None = None,
    slo: SLO | None = None,
) -> CaseResult:
    """Send `samples` with `shape` and turn what happened into a CaseResult."""
    for i, sample in enumerate(samples):
        prompt_len = sample.served_prompt_len or sample.prompt_len  # template and image tokens, where known
        check_fits(prompt_len, sample.output_len, endpoint.max_model_len, f"{case_id} request {i}")
    payloads = [payload(s, settings.route, settings.ignore_eos, settings.extra_body) for s in samples]
    before = scrape(endpoint)
    started, cpu_started = time.monotonic(), time.process_time()
    records, parts = _records(endpoint, settings, payloads, shape, case_id)
    took, cpu = time.monotonic() - started, time.process_time() - cpu_started
    after = scrape(endpoint)
    metrics = summarise(records, slo or SLO())
    if settings.num_speculative_tokens >= 0:
        metrics.update(acceptance_summary(records, settings.num_speculative_tokens))
    health = client_health(records, scheduled_rate, settings.limits)
    workers, worker_reasons = _worker_health(records, parts, scheduled_rate, settings)
    asked = [Asked(s.prompt_len, s.output_len, s.served_prompt_len) for s in samples]
    known = settings.route == "completions" or all(s.served_prompt_len is not None for s in samples)
    audit = token_audit(asked, records, tokens.output_lens, settings.ignore_eos, compare_input=known)
    signals = server_signals(before or {}, after or {}) if before is not None and after is not None else {}
    clock = (
        server_clock(before, after, metrics, int(metrics.get("completed") or 0), settings.limits.max_ttft_overhead)
        if before is not None and after is not None
        else {"flag": None, "message": "the server has no /metrics"}
    )
    full_config = {
        **config,
        "endpoint_type": settings.route,
        "ignore_eos": settings.ignore_eos,
        "model": endpoint.model,
        "base_url": endpoint.base_url,
        "tokenizer": tokens.name,
        "seed": settings.seed,
        "client_workers": max(1, len(parts)),
        **({"deployment": endpoint.deployment} if endpoint.deployment else {}),  # measured through a P/D proxy
        # what was asked, as the AscendCloud CSVs report lengths (the mean over the run's requests)
        "mean_prompt_tokens": float(np.mean([s.prompt_len for s in samples])) if samples else None,
        "mean_output_tokens": float(np.mean([s.output_len for s in samples])) if samples else None,
    }
    return CaseResult(
        suite=suite,
        case_id=case_id,
        config=full_config,
        metrics=metrics,
        checks={
            "client": {
                "valid": health.valid and not worker_reasons,
                **health.numbers,
                "workers": workers,
                # the harness process's CPU while it sent (its client worker processes, when there are, not in it)
                "cpu_s": round(cpu, 4),
                "cpu_cores": round(cpu / took, 4) if took > 0 else None,
                # the measured window on this host's monotonic clock, as device telemetry is stamped
                "window": [round(started, 3), round(started + took, 3)],
            },
            "server_clock": clock,
            "token_audit": audit,
            "server": signals,
            # why TPOT and ITL are null, when they are not measurements (bunched delivery); None when measured
            "per_token_unmeasurable": per_token_unmeasurable(completed(records)),
        },
        invalid_reasons=[*health.reasons, *worker_reasons],
        records=records if settings.save_records else None,
    )


def static_samples(
    tokens: Tokens, case: StaticCase, seed: int, repeat: int = 0, suite: str = "serving.static"
) -> list[Sample]:
    """Fresh random prompts of exactly the case's lengths for one repeat (protocol.stream)."""
    rng = stream(seed, suite, case.id, repeat)
    return random_samples(tokens, case.num_requests, case.prompt_tokens, case.output_tokens, rng)


def run_static(
    endpoint: Endpoint,
    tokens: Tokens,
    case: StaticCase,
    settings: LoadSettings,
    samples: Sequence[Sample] | None = None,
    suite: str = "serving.static",
) -> CaseResult:
    """A closed-loop case: exactly `case.parallel` requests in flight until `parallel x epochs` are done."""
    samples = list(samples) if samples is not None else static_samples(tokens, case, settings.seed)
    config = {**dataclasses.asdict(case), "parallel_num": case.parallel, "num_requests": len(samples)}
    return measure(endpoint, tokens, samples, settings, ClosedLoop(case.parallel), suite, case.id, config)


def run_dynamic(
    endpoint: Endpoint,
    tokens: Tokens,
    case: DynamicCase,
    settings: LoadSettings,
    samples: Sequence[Sample],
    dataset: str,
) -> CaseResult:
    """An open-loop case: requests sent at Poisson (gamma) arrival times, optionally under a concurrency cap."""
    rng = np.random.default_rng([settings.seed, case.num_prompts])
    offsets = arrival_offsets(len(samples), case.request_rate, case.burstiness, rng)
    shape = OpenLoop(tuple(float(o) for o in offsets), case.max_concurrency)

    config = {
        "request_rate": case.request_rate,
        "num_prompts": case.num_prompts,
        "num_requests": len(samples),
        "burstiness": case.burstiness,
        "max_concurrency": case.max_concurrency,
        "dataset": dataset,
        "slo": dataclasses.asdict(case.slo),
        "schedule_rate": realised_rate(offsets),
    }
    scheduled = None if math.isinf(case.request_rate) else realised_rate(offsets)
    return measure(endpoint, tokens, samples, settings, shape, "serving.dynamic", case.id, config, scheduled, case.slo)
