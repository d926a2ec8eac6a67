"""What a prefill/decode deployment's checks showed, as Verdicts: did KV move from the prefill to the decode
instances, and are the answers through the deployment a single instance's? Pure: counter deltas and counts in.

The decode instances' own counters say it (`vllm:external_prefix_cache_queries`: prompt tokens a decode instance
asked its connector for; `vllm:external_prefix_cache_hits`: tokens it got). Equal answers prove the transfer
correct only when something was transferred: a decode instance that recomputed every prompt answers the same.
"""

from __future__ import annotations

from harness.gates.verdict import Outcome, Verdict

KV_TRANSFER = "external_prefix_cache_hits"
SAME_ANSWERS = "different_answers"


def kv_transfer_verdict(failed_requests: int, queries: float, hits: float, known_no_transfer: str | None) -> Verdict:
    """pass when the decode instances got KV from their connector. `known_no_transfer` is the platform's one
    known fault (vLLM's CPU build asks its connector and loads nothing): with exactly that symptom (every request
    answered, queries > 0, hits == 0) the check has not shown the transfer: not_shown, naming it. Anything else
    that shows no transfer fails."""
    numbers: dict[str, float | None] = {"queries": queries, "hits": hits, "failed_requests": float(failed_requests)}

    def judged(outcome: Outcome, message: str) -> Verdict:
        return Verdict(KV_TRANSFER, outcome, message, candidate_mean=hits, numbers=numbers)

    if failed_requests:
        return judged("fail", f"{failed_requests} request(s) through the deployment failed")
    if queries <= 0:
        return judged(
            "fail",
            "the decode instances asked their connector for no prompt tokens (external prefix-cache queries "
            "unchanged): is a KV connector configured (server.kv-transfer-config)?",
        )
    if hits > 0:
        return judged("pass", f"the decode instances got {hits:.0f} of {queries:.0f} queried prompt tokens as KV")
    if known_no_transfer is not None:
        return judged("not_shown", f"no KV transferred ({queries:.0f} tokens queried, 0 got): {known_no_transfer}")
    return judged(
        "fail",
        f"no KV transferred: the decode instances got 0 of {queries:.0f} queried prompt tokens from the prefill "
        "side and recomputed the rest",
    )


def same_answers_verdict(prompts: int, different: int, transferred_tokens: float) -> Verdict:
    """pass when every greedy answer through the deployment equals the single instance's and KV was transferred
    for those requests; fail when any differs; not_shown when they agree but no KV arrived (nothing was checked
    of the transfer: the decode instance recomputed)."""
    numbers: dict[str, float | None] = {
        "prompts": float(prompts),
        "different": float(different),
        "transferred_tokens": transferred_tokens,
    }
    outcome: Outcome
    if different:
        outcome, message = "fail", f"{different} of {prompts} greedy answers differ from a single instance's"
    elif transferred_tokens <= 0:
        outcome, message = (
            "not_shown",
            f"{prompts} of {prompts} answers the same, but no KV was transferred for them (the decode instance "
            "recomputed): this shows nothing of the transfer",
        )
    else:
        outcome = "pass"
        message = f"{prompts} of {prompts} answers the same, with {transferred_tokens:.0f} prompt tokens of KV moved"
    return Verdict(SAME_ANSWERS, outcome, message, candidate_mean=float(different), numbers=numbers)
