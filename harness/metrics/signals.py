"""Server-side signals from two /metrics snapshots: prefix-cache hit rate and speculative-decoding acceptance.

Pure: takes counter totals (name -> value, summed over labels) taken before and after a run.
"""

from __future__ import annotations

from collections.abc import Mapping

from harness.gates.verdict import Verdict

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


def server_signals(before: Counters, after: Counters) -> dict[str, float | list[float] | None]:
    """Rates over the run; None when the server does not export the counters or nothing was counted."""
    hit_rate = looked_up = None
    for hits, queries in PREFIX_NAMES:
        looked_up = _delta(before, after, queries)
        hit_rate = _ratio(_delta(before, after, hits), looked_up)
        if looked_up is not None:
            break
    accepted = _delta(before, after, "vllm:spec_decode_num_accepted_tokens")
    drafts = _delta(before, after, "vllm:spec_decode_num_drafts")
    per_draft = _ratio(accepted, drafts)
    return {
        "prefix_cache_hit_rate": hit_rate,
        # prompt tokens looked up in the prefix cache: 0 when the server has prefix caching off, None when it
        # exports no such counter
        "prefix_cache_queries": looked_up,
        "spec_decode_acceptance_rate": _ratio(accepted, _delta(before, after, "vllm:spec_decode_num_draft_tokens")),
        "spec_decode_mean_acceptance_length": None if per_draft is None else 1.0 + per_draft,
        "spec_decode_drafts": drafts,
        "spec_decode_acceptance_by_position": _by_position(before, after, drafts),
    }


def _by_position(before: Counters, after: Counters, drafts: float | None) -> list[float] | None:
    """The share of drafts whose token at position i (0, 1, ...) was accepted (vLLM's per-position counter)."""
    prefix = "vllm:spec_decode_num_accepted_tokens_per_pos["
    positions = sorted(
        int(k[len(prefix) : -1]) for k in after if k.startswith(prefix) and k[len(prefix) : -1].isdigit()
    )
    if not positions or not drafts:
        return None
    return [(_delta(before, after, f"{prefix}{p}]") or 0.0) / drafts for p in positions]


def prefix_cache_verdict(
    shared: float | None, control: float | None, prefix_tokens: int, prompt_tokens: int, block_size: int = 16
) -> Verdict:
    """Is the prefix cache hit *because* the prompts share a prefix? A Verdict on `prefix_cache_hit_rate`: the
    shared workload's rate against the control's, `change` the absolute gain.

    `shared` is the hit rate of the workload whose prompts share `prefix_tokens`, `control` that of the same
    lengths without a shared prefix (fresh prompts). Whole blocks of the prefix can be hit, so the most a prompt
    can gain is floor(prefix / block) x block of its tokens; the check asks for at least half of that over the
    control, which itself must stay under a quarter of it (a control that hits the cache means the prompts were
    not fresh, and any hit rate of the shared workload would prove nothing).
    """
    reachable = (prefix_tokens // block_size) * block_size / prompt_tokens

    def judged(ok: bool | None, message: str) -> Verdict:
        gain = None if shared is None or control is None else shared - control
        return Verdict(
            "prefix_cache_hit_rate",
            "not_shown" if ok is None else "pass" if ok else "fail",
            message,
            change=gain,
            absolute=True,
            baseline_mean=control,
            candidate_mean=shared,
            numbers={"reachable": reachable},
        )

    if shared is None or control is None:  # the server exports no prefix-cache counters: nothing to judge by
        return judged(None, f"hit rate not measured (shared prefix: {shared}, control: {control})")
    numbers = (
        f"hit rate {shared:.1%} with a shared {prefix_tokens}-token prefix, {control:.1%} without "
        f"(at most {reachable:.1%} of prompt tokens can be hit)"
    )
    if control > reachable / 4:
        return judged(False, f"{numbers}: the control hits the cache, so the prompts are not fresh")
    if shared - control < reachable / 2:
        return judged(False, f"{numbers}: the shared prefix gains less than half of what it could")
    return judged(True, numbers)
