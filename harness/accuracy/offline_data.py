"""The data of the project's offline lm-eval tasks, made here from a seed (nothing is downloaded).

One domain, two task types: single-digit additions asked as a question. `llmqual_arith_gen` scores the generated
answer by exact match; `llmqual_arith_mc` scores four candidate answers by log-likelihood. A model that has
learnt the facts (the training suite's instruction data teaches them) scores well on both; an untrained one
scores near zero and near chance (0.25). Regenerate the committed files with
`python -m harness.accuracy.offline_data fixtures/lm_eval_tasks/data`.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

SEED = 20261122


def arithmetic_records(seed: int = SEED) -> list[dict[str, Any]]:
    """Every a + b with a, b in 0..9, each with three wrong answers near the right one, in a seeded order."""
    rng = random.Random(seed)
    records = []
    for a in range(10):
        for b in range(10):
            answer = a + b
            wrong = rng.sample([n for n in range(max(0, answer - 4), answer + 5) if n != answer], 3)
            choices = [str(n) for n in [*wrong, answer]]
            rng.shuffle(choices)
            records.append(
                {"a": a, "b": b, "answer": str(answer), "choices": choices, "gold": choices.index(str(answer))}
            )
    rng.shuffle(records)
    return records


def question(a: int, b: int) -> str:
    """The question as the tasks and the training data phrase it."""
    return f"Question: What is {a} plus {b}?\nAnswer:"


def write(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "arithmetic.jsonl"
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in arithmetic_records()), encoding="utf-8")
    return path


if __name__ == "__main__":
    print(write(Path(sys.argv[1] if len(sys.argv) > 1 else "fixtures/lm_eval_tasks/data")))
