"""Serving metrics of one benchmark run, as docs/measurement.md defines them, under `vllm bench serve`'s names.

Pure functions over RequestRecords. Failed requests are counted by class, not dropped; a request that finished
without reporting usage counts as completed but its token-based metrics are missing, and so reported.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.client.openai import RequestRecord
from harness.metric_names import (
    MEAN_REQUEST_OUTPUT_THROUGHPUT,
    OUTPUT_THROUGHPUT,
    REQUEST_GOODPUT,
    REQUEST_THROUGHPUT,
    TOTAL_TOKEN_THROUGHPUT,
)
from harness.metrics.stats import describe

Summary = dict[str, Any]


@dataclass(frozen=True)
class SLO:
    """Service-level objectives for goodput, in milliseconds; None means not constrained."""

    ttft_ms: float | None = None
    tpot_ms: float | None = None
    e2el_ms: float | None = None

    def given(self) -> bool:
        return any(v is not None for v in (self.ttft_ms, self.tpot_ms, self.e2el_ms))


def ttft(record: RequestRecord) -> float | None:
    return record.content_times[0] - record.sent if record.content_times else None


def e2el(record: RequestRecord) -> float | None:
    return record.content_times[-1] - record.sent if record.content_times else None


def tpot(record: RequestRecord) -> float | None:
    """(E2EL - TTFT) / (output tokens - 1) for requests with at least two output tokens, else None."""
    first, last, tokens = ttft(record), e2el(record), record.completion_tokens
    if first is None or last is None or tokens is None or tokens < 2:
        return None
    return (last - first) / (tokens - 1)


def itls(record: RequestRecord) -> list[float]:
    times = record.content_times
    return [b - a for a, b in itertools.pairwise(times)]


BUNCHED_GAP_S = 50e-6
# From this share of bunched gaps on, TPOT and ITL are not measured (null): most tokens reached the client together
# with another, so the gaps between them are delivery (a starved API process flushing a burst), not generation. At
# 100% every request's tokens arrive in one burst and TPOT would read 0 ms.
UNMEASURABLE_BUNCHED_FRACTION = 0.5


def bunched_fraction(records: Sequence[RequestRecord]) -> float | None:
    """Share of inter-event gaps under 50 µs: events that reached the client together, not as generated.

    A server whose API process is starved (vLLM's CPU engine busy-polling on two cores) sends a stream's events
    in one burst; TTFT and ITL then describe delivery, not generation.
    """
    gaps = [gap for r in records for gap in itls(r)]
    return sum(g < BUNCHED_GAP_S for g in gaps) / len(gaps) if gaps else None


def per_token_unmeasurable(records: Sequence[RequestRecord]) -> str | None:
    """Why TPOT and ITL of these requests are not measurements, or None when they are."""
    fraction = bunched_fraction(records)
    if fraction is None or fraction < UNMEASURABLE_BUNCHED_FRACTION:
        return None
    return (
        f"{fraction:.0%} of stream events arrived within {BUNCHED_GAP_S * 1e6:.0f} µs of the previous one (bunched; "
        f"from {UNMEASURABLE_BUNCHED_FRACTION:.0%} on, TPOT and ITL are delivery, not generation)"
    )


def meets(record: RequestRecord, slo: SLO) -> bool:
    """Whether a completed request met every SLO given (a request with one token has TPOT 0, as in vLLM)."""
    checks = ((ttft(record), slo.ttft_ms), (tpot(record) or 0.0, slo.tpot_ms), (e2el(record), slo.e2el_ms))
    return all(limit is None or (value is not None and value * 1000.0 <= limit) for value, limit in checks)


def completed(records: Sequence[RequestRecord]) -> list[RequestRecord]:
    """Requests that succeeded and produced at least one content event."""
    return [r for r in records if r.ok and r.content_times]


def failures(records: Sequence[RequestRecord]) -> dict[str, int]:
    """Failed requests by class: `http_<status>`, `timeout`, `stream`, `connection`, `deadline` (cut by the run's
    deadline), `not_sent` (the deadline came first), `no_content`."""
    classes: Counter[str] = Counter()
    for r in records:
        if not r.ok:
            classes[f"http_{r.status}" if r.error == "http" else str(r.error)] += 1
        elif not r.content_times:
            classes["no_content"] += 1
    return dict(sorted(classes.items()))


def duration(records: Sequence[RequestRecord]) -> float | None:
    """First send to last completion; None when nothing completed."""
    done = completed(records)
    if not done:
        return None
    return max(r.content_times[-1] for r in done) - min(r.sent for r in records if r.error != "not_sent")


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarise(records: Sequence[RequestRecord], slo: SLO | None = None) -> Summary:
    """Counts, token totals, throughputs, goodput and latency distributions of one run."""
    slo = slo or SLO()
    done = completed(records)
    span = duration(records)
    with_usage = [r for r in done if r.completion_tokens is not None]
    input_tokens = sum(r.prompt_tokens or 0 for r in done)
    output_tokens = sum(r.completion_tokens or 0 for r in with_usage)

    def per_second(amount: float) -> float | None:
        return amount / span if span else None

    summary: Summary = {
        "num_requests": len(records),
        "completed": len(done),
        "failed": len(records) - len(done),
        "failures": failures(records),
        "missing_usage": len(done) - len(with_usage),
        "total_input_tokens": input_tokens,
        "total_output_tokens": output_tokens,
        "duration": span,
        REQUEST_THROUGHPUT: per_second(len(done)),
        OUTPUT_THROUGHPUT: per_second(output_tokens),
        TOTAL_TOKEN_THROUGHPUT: per_second(input_tokens + output_tokens),
        REQUEST_GOODPUT: per_second(sum(meets(r, slo) for r in done)) if slo.given() else None,
        MEAN_REQUEST_OUTPUT_THROUGHPUT: _mean(
            [r.completion_tokens / t for r in with_usage if r.completion_tokens and (t := e2el(r))]
        ),
    }
    summary.update(describe([v for r in done if (v := ttft(r)) is not None], "ttft"))
    unmeasurable = per_token_unmeasurable(done)
    per_token = [] if unmeasurable else done  # null, never the 0 ms of a burst
    if unmeasurable and slo.tpot_ms is not None:  # a TPOT objective cannot be judged either
        summary[REQUEST_GOODPUT] = None
    summary.update(describe([v for r in per_token if (v := tpot(r)) is not None], "tpot"))
    summary.update(describe([gap for r in per_token for gap in itls(r)], "itl"))
    summary.update(describe([v for r in done if (v := e2el(r)) is not None], "e2el"))
    return summary
