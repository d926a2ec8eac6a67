"""Speculative decoding seen from the client: how many draft tokens each request's steps carried.

A streamed event is one engine step; with speculative decoding a step emits 1 + the draft tokens accepted in it.
The AscendCloud tools' per-request acceptance rate (benchmark_parallel.py, `--num-speculative-tokens k`) is

    (output tokens - 1) / ((events - 1) * (k + 1))

the first event (the prefill's token) left out: the share of the k + 1 tokens a step could emit that it did. The
server's own rate (`vllm:spec_decode_num_accepted_tokens / num_draft_tokens`, harness.metrics.signals) counts only
draft tokens, so the two differ by definition; both are reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from harness.client.openai import RequestRecord


def acceptance_rates(records: Sequence[RequestRecord], num_speculative_tokens: int) -> list[float]:
    """Per-request rates of completed requests with at least two events."""
    rates = []
    for record in records:
        events = len(record.content_times)
        if record.ok and record.completion_tokens and events > 1:
            rates.append((record.completion_tokens - 1) / ((events - 1) * (num_speculative_tokens + 1)))
    return rates


def acceptance_summary(records: Sequence[RequestRecord], num_speculative_tokens: int) -> dict[str, Any]:
    """p90, p99, max, min and mean of the per-request rates (the scripts' five columns); None without data."""
    rates = np.asarray(acceptance_rates(records, num_speculative_tokens), dtype=float)
    keys = ("p90", "p99", "max", "min", "mean")
    if rates.size == 0:
        return {f"{k}_spec_acceptance_rate": None for k in keys}
    values = (np.percentile(rates, 90), np.percentile(rates, 99), rates.max(), rates.min(), rates.mean())
    return {f"{k}_spec_acceptance_rate": float(v) for k, v in zip(keys, values, strict=True)}
