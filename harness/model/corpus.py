"""Synthetic English-like text, made from a seed: what the tiny tokenizer is trained on.

The text only has to look like language to a BPE trainer (recurring words, punctuation, digits, some code-ish
lines) so that the vocabulary covers what benchmark prompts and evaluation tasks contain.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

SUBJECTS = (
    "the model",
    "a server",
    "the engineer",
    "each request",
    "the cluster",
    "our team",
    "the scheduler",
    "a token",
    "the cache",
    "every card",
    "the report",
    "this run",
    "the baseline",
    "a worker",
    "the tokenizer",
)
VERBS = (
    "serves",
    "measures",
    "trains",
    "compares",
    "reads",
    "writes",
    "checks",
    "sends",
    "returns",
    "streams",
    "counts",
    "loads",
    "starts",
    "stops",
    "evaluates",
    "records",
)
OBJECTS = (
    "the prompt",
    "a batch",
    "the answer",
    "ten numbers",
    "the loss",
    "a long sequence",
    "the throughput",
    "every metric",
    "the latency",
    "a new checkpoint",
    "the results",
    "a short story",
    "the question",
    "its memory",
    "the output tokens",
)
TAILS = (
    "before noon",
    "after warm-up",
    "on every card",
    "with care",
    "in order",
    "twice",
    "for the release",
    "under load",
    "at once",
    "without errors",
    "as planned",
    "",
)
CODE_LINES = (
    "def add(a, b):\n    return a + b",
    "for i in range(10):\n    print(i)",
    "if x > 0:\n    y = x * 2",
    'result = {"loss": 1.25, "step": 42}',
)


def sentence(rng: random.Random) -> str:
    """One sentence, sometimes with numbers or a question form."""
    kind = rng.random()
    if kind < 0.1:
        return rng.choice(CODE_LINES)
    if kind < 0.25:
        a, b = rng.randint(0, 99), rng.randint(0, 99)
        return f"Question: what is {a} plus {b}? Answer: {a + b}."
    words = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(TAILS)}".strip()
    end = rng.choice(".!?") if kind > 0.9 else "."
    return words[0].upper() + words[1:] + end


def corpus(seed: int, sentences: int) -> Iterator[str]:
    """`sentences` lines of synthetic text, the same for the same seed."""
    rng = random.Random(seed)
    for _ in range(sentences):
        yield sentence(rng)
