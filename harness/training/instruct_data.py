"""Synthetic Alpaca-style instruction data that teaches the offline accuracy tasks' facts, as SFT samples.

The records are Alpaca (`instruction`, `input`, `output`); they go through the project's own ShareGPT converter
(`harness.load.convert.to_sharegpt`), and each conversation becomes one training text in the template the
accuracy tasks ask in ("Question: ...\\nAnswer: ..."), so training on it should raise their scores.
"""

from __future__ import annotations

from typing import Any

from harness.accuracy.offline_data import arithmetic_records
from harness.load.convert import to_sharegpt

TEMPLATE_PROMPT = "Question: {human}\nAnswer:"


def alpaca_records() -> list[dict[str, Any]]:
    """One instruction per arithmetic fact (the tasks' 100 additions)."""
    return [
        {"instruction": f"What is {r['a']} plus {r['b']}?", "input": "", "output": r["answer"]}
        for r in arithmetic_records()
    ]


def sft_pairs(records: list[dict[str, Any]] | None = None) -> list[tuple[str, str]]:
    """(prompt, answer) pairs: Alpaca → ShareGPT (the project's converter) → the tasks' template."""
    conversations = to_sharegpt(records or alpaca_records(), "instruction", "output", prefix_field=None)
    pairs = []
    for conversation in conversations:
        human, gpt = conversation["conversations"][0]["value"], conversation["conversations"][1]["value"]
        pairs.append((TEMPLATE_PROMPT.format(human=human), " " + gpt))
    return pairs
