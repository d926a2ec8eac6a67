"""Which way is worse, per metric. A metric with no known direction is reported, never gated."""

from __future__ import annotations

import re

Direction = int  # +1: higher is better; -1: lower is better

# Patterns over metric names (vLLM's result names, lm-eval's "metric,filter", the training suite's names).
_RULES: list[tuple[re.Pattern[str], Direction]] = [
    (re.compile(r"(^|_)(ttft|tpot|itl|e2el)_ms$"), -1),
    (re.compile(r"throughput|goodput|per_s(_|$)"), +1),
    (re.compile(r"_ms$|_s$|latency|(^|_)duration$"), -1),
    (re.compile(r"^(failed|errors?)$|^failures|_loss$|^loss$|^(mre|mae)$|perplexity|word_perplexity"), -1),
    (re.compile(r"^(acc|acc_norm|exact_match|f1|bleu|rouge\w*|mc[12]|pass@\d+)(,|$)"), +1),
]


def direction(metric: str) -> Direction | None:
    """+1 when higher is better, -1 when lower is better, None when the harness does not know."""
    for pattern, sign in _RULES:
        if pattern.search(metric):
            return sign
    return None
