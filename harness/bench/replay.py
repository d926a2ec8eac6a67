"""Trace replay: a production trace's requests sent at the trace's own times, with prompts made so that the trace's
shared prefixes are shared token for token, and the server's prefix-cache hit rate held to the one the trace implies.

The prompts are token ids (harness.load.traces.trace_samples): equal hash ids are identical blocks, so what the
trace says can be reused is exactly what the server can reuse. The hit rate the trace implies is computed in whole
blocks of the server's KV block (`cache-block`); the measured one is the server's own counters over the run. The two
must agree within `hit-rate-tolerance`: below it, the server did not reuse what the trace shares (prefix caching
off, or prompts that do not honour the ids); above it, the prompts share more than their ids say.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from harness.bench.cases import LoadSettings
from harness.bench.execute import measure
from harness.client.openai import RequestRecord
from harness.config.workloads import ReplaySpec
from harness.gates.verdict import Verdict
from harness.load.loops import OpenLoop
from harness.load.schedule import realised_rate
from harness.load.tokens import Tokens
from harness.load.traces import Trace, generate_mooncake, implied_hit_rate, read_burstgpt, read_mooncake, trace_samples
from harness.results.case import CaseResult
from harness.server.endpoint import Endpoint
from harness.server.prometheus import server_block_size

SUITE = "serving.replay"


def load_trace(spec: ReplaySpec, resolve: Any, folder: Path) -> tuple[Trace, Path]:
    """The plan's trace (`resolve` turns the plan's path into a file), or one generated into `folder`, cut to
    `max-requests`; and the file it was read from (a generated trace is kept with the run)."""
    if spec.generate is not None:
        g = spec.generate
        lines = generate_mooncake(
            g.count, g.rate, spec.block_size, g.shared, g.tail_blocks, g.output_tokens, g.seed
        )  # fmt: skip
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "trace.jsonl"
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    else:
        assert spec.trace is not None  # the spec's validator: one of trace and generate
        path = resolve(spec.trace)
    trace = (read_burstgpt if spec.format == "burstgpt" else read_mooncake)(path, spec.block_size)
    if spec.max_requests is not None:
        trace = dataclasses.replace(trace, requests=trace.requests[: spec.max_requests])
    return trace, path


def hit_rate_verdict(implied: float, measured: float | None, tolerance: float, queries: float | None) -> Verdict:
    """The server's measured prefix-cache hit rate against the trace's implied one (absolute difference);
    `queries` is the prompt tokens the server looked up in its cache (0: prefix caching off)."""

    def judged(outcome: Any, message: str) -> Verdict:
        change = None if measured is None else measured - implied
        return Verdict(
            "prefix_cache_hit_rate",
            outcome,
            message,
            change=change,
            absolute=True,
            baseline_mean=implied,
            candidate_mean=measured,
            allowed=tolerance,
        )

    if queries == 0 and implied > tolerance:
        return judged("fail", f"the server looked nothing up in a prefix cache (is prefix caching off?); the trace "
                      f"implies a hit rate of {implied:.1%}")  # fmt: skip
    if measured is None:
        return judged("not_shown", "the server exports no prefix-cache counters: the replay's reuse is not shown")
    said = f"measured hit rate {measured:.1%}, the trace implies {implied:.1%} (tolerance {tolerance:.0%})"
    if measured < implied - tolerance:
        return judged("fail", f"{said}: the server did not reuse what the trace shares (is prefix caching off?)")
    if measured > implied + tolerance:
        return judged("fail", f"{said}: the prompts share more than their hash ids say")
    return judged("pass", said)


def _timeline(records: list[RequestRecord]) -> list[list[float | None]]:
    """[scheduled, sent, ttft] per request in seconds after the first was due (TTFT None for a failed request)."""
    first = min((r.scheduled for r in records if r.scheduled is not None), default=0.0)
    rows: list[list[float | None]] = []
    for r in records:
        ttft = r.content_times[0] - r.sent if r.ok and r.content_times else None
        scheduled = None if r.scheduled is None else round(r.scheduled - first, 4)
        sent = round(r.sent - first, 4) if r.sent else None
        rows.append([scheduled, sent, None if ttft is None else round(ttft, 4)])
    return rows


def run_replay(
    endpoint: Endpoint, tokens: Tokens, trace: Trace, spec: ReplaySpec, settings: LoadSettings, case_id: str
) -> CaseResult:
    """Send the trace once, at its times divided by `speedup`, and judge the hit rate it reached."""
    samples = trace_samples(trace, tokens.plain_ids, settings.seed)
    offsets = tuple(r.arrival_s / spec.speedup for r in trace.requests)
    reported = server_block_size(endpoint)
    cache_block = spec.cache_block or reported or trace.block_size
    implied = implied_hit_rate(trace, cache_block)
    rate = realised_rate(list(offsets))
    config = {
        "num_requests": len(samples),
        "trace_requests": len(trace.requests),
        "left_out": trace.left_out,
        "block_size": trace.block_size,
        "cache_block": cache_block,
        "cache_block_from": "plan" if spec.cache_block else "server" if reported else "trace",
        "speedup": spec.speedup,
        "trace_span_s": trace.requests[-1].arrival_s if trace.requests else 0.0,
        "schedule_rate": rate,
        "implied_hit_rate": implied,
    }
    recorded = dataclasses.replace(settings, save_records=True)
    shape = OpenLoop(offsets, None)
    result = measure(endpoint, tokens, samples, recorded, shape, SUITE, case_id, config, rate)
    server = result.checks["server"]
    verdict = hit_rate_verdict(
        implied, server.get("prefix_cache_hit_rate"), spec.hit_rate_tolerance, server.get("prefix_cache_queries")
    )
    result.checks["replay"] = {**verdict.as_json(), "timeline": _timeline(result.records or [])}
    if not settings.save_records:
        result.records = None
    return result
