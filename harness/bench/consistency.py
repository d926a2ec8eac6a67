"""Correctness under load: greedy outputs must not depend on what else the server is doing.

The same prompts are sent twice at temperature 0: one at a time, then all at once. Every answer must be the same
text both times. The prompts share a prefix, so the later ones reuse the earlier ones' cached blocks (when the
prefix spans a whole KV block: 128 tokens on vLLM's CPU build), and under load every prompt finds its own blocks
cached by the first run: a server whose prefix cache, speculative decoding, batching or KV transfer changes a
greedy answer fails, and the check names each request that diverged, where, and both texts from there. Its
message says what the loaded run put to the test, from the server's counters (`exercised`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from harness.bench.cases import LoadSettings
from harness.bench.execute import measure
from harness.client.openai import RequestRecord
from harness.config.workloads import ConsistencySpec
from harness.gates.verdict import Verdict
from harness.load.loops import ClosedLoop
from harness.load.synthetic import prefix_samples
from harness.load.tokens import Tokens
from harness.results.case import CaseResult
from harness.server.endpoint import Endpoint

SUITE = "serving.consistency"
SHOWN_CHARS = 40  # of each text from where they part


def divergences(alone: list[RequestRecord], together: list[RequestRecord]) -> list[dict[str, Any]]:
    """Each request whose answer differs between the two runs (or failed in either): where and how."""
    found = []
    for index, (one, many) in enumerate(zip(alone, together, strict=True)):
        if not one.ok or not many.ok:
            found.append({"request": index, "error": one.error_detail or many.error_detail or "failed"})
            continue
        if one.text == many.text:
            continue
        at = next((i for i, (a, b) in enumerate(zip(one.text, many.text, strict=False)) if a != b), None)
        at = min(len(one.text), len(many.text)) if at is None else at
        found.append(
            {
                "request": index,
                "char": at,
                "alone": one.text[at : at + SHOWN_CHARS],
                "under_load": many.text[at : at + SHOWN_CHARS],
            }
        )
    return found


def consistency_verdict(found: list[dict[str, Any]], requests: int, concurrency: int) -> Verdict:
    if not found:
        return Verdict(
            "greedy_consistency", "pass", f"all {requests} greedy answers equal alone and at concurrency {concurrency}"
        )
    first = found[0]
    where = (
        f"request {first['request']} failed: {first['error']}"
        if "error" in first
        else f"request {first['request']} parts at character {first['char']}: alone {first['alone']!r}, "
        f"under load {first['under_load']!r}"
    )
    return Verdict(
        "greedy_consistency",
        "fail",
        f"{len(found)} of {requests} greedy answers differ at concurrency {concurrency} from the same prompt alone; "
        f"{where}",
        numbers={"diverged": float(len(found))},
    )


def exercised(server: dict[str, Any]) -> str:
    """What the loaded run put to the test, from the server's own counters: the prefix cache (its hit rate) and
    speculative decoding (its drafts), each only where the server counts it."""
    said = []
    hit_rate, looked_up = server.get("prefix_cache_hit_rate"), server.get("prefix_cache_queries")
    if isinstance(hit_rate, int | float) and hit_rate > 0:
        said.append(f"the prefix cache served {hit_rate:.0%} of the prompt tokens")
    elif looked_up:
        said.append("the prefix cache was looked up but never hit (is the shared prefix shorter than a KV block?)")
    drafts = server.get("spec_decode_drafts")
    if isinstance(drafts, int | float) and drafts > 0:
        said.append(f"{drafts:.0f} speculative drafts were checked")
    return "; ".join(said) if said else "the server counted neither prefix-cache hits nor speculative drafts"


def run_consistency(endpoint: Endpoint, tokens: Tokens, spec: ConsistencySpec, settings: LoadSettings) -> CaseResult:
    """Send the prompts one at a time, then all at once, and compare the answers."""
    rng = np.random.default_rng([settings.seed, spec.prompts, spec.prompt_tokens])
    samples = prefix_samples(tokens, spec.prompts, spec.prefix_tokens, spec.prompt_tokens, spec.output_tokens, rng)
    recorded = dataclasses.replace(settings, save_records=True, warmup_requests=0, min_requests=0, min_seconds=0.0)
    config = {
        "prompts": spec.prompts,
        "prompt_tokens": spec.prompt_tokens,
        "prefix_tokens": spec.prefix_tokens,
        "output_tokens": spec.output_tokens,
        "num_requests": 2 * spec.prompts,
    }
    case_id = f"n{spec.prompts}-in{spec.prompt_tokens}-out{spec.output_tokens}"
    alone = measure(endpoint, tokens, samples, recorded, ClosedLoop(1), SUITE, case_id, config)
    together = measure(endpoint, tokens, samples, recorded, ClosedLoop(spec.prompts), SUITE, case_id, config)
    found = divergences(alone.records or [], together.records or [])
    verdict = consistency_verdict(found, spec.prompts, spec.prompts)
    put = exercised(together.checks.get("server") or {})
    verdict = dataclasses.replace(verdict, message=f"{verdict.message}; under load {put}")
    together.checks["consistency"] = {**verdict.as_json(), "divergences": found}
    together.checks["alone"] = {"metrics": alone.metrics, "valid": alone.valid}
    together.invalid_reasons += [f"alone: {reason}" for reason in alone.invalid_reasons]
    if not settings.save_records:
        together.records = None
    return together
