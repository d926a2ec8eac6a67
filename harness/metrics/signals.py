"""Server-side signals from two /metrics snapshots: prefix-cache hit rate and speculative-decoding acceptance.

Pure: takes counter totals (name -> value, summed over labels) taken before and after a run.
"""

from __future__ import annotations

from collections.abc import Mapping

Counters = Mapping[str, float]

PREFIX_NAMES = (
    ("vllm:prefix_cache_hits", "vllm:prefix_cache_queries"),
    ("vllm:gpu_prefix_cache_hits", "vllm:gpu_prefix_cache_queries"),  # older servers
)


def _delta(before: Counters, after: Counters, name: str) -> float | None:
    if name not in after:
        return None
    return after[name] - before.get(name, 0.0)


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def server_signals(before: Counters, after: Counters) -> dict[str, float | None]:
    """Rates over the run; None when the server does not export the counters or nothing was counted."""
    hit_rate = None
    for hits, queries in PREFIX_NAMES:
        hit_rate = _ratio(_delta(before, after, hits), _delta(before, after, queries))
        if hit_rate is not None:
            break
    accepted = _delta(before, after, "vllm:spec_decode_num_accepted_tokens")
    drafts = _delta(before, after, "vllm:spec_decode_num_drafts")
    per_draft = _ratio(accepted, drafts)
    return {
        "prefix_cache_hit_rate": hit_rate,
        "spec_decode_acceptance_rate": _ratio(accepted, _delta(before, after, "vllm:spec_decode_num_draft_tokens")),
        "spec_decode_mean_acceptance_length": None if per_draft is None else 1.0 + per_draft,
    }
