"""Dataset files made from parameters: `llmqual dataset generate` and `llmqual dataset to-sharegpt`.

`generate` writes the custom format (a JSON list of {"input", "output"}) with token lengths drawn from normal
distributions clipped to [min, max]; `to-sharegpt` turns records with optional prefix, input and output fields
into ShareGPT conversations (prefix and input make the human turn, output the gpt turn).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.load.datasets import DatasetError
from harness.load.tokens import Tokens


@dataclass(frozen=True)
class LengthDistribution:
    """A normal distribution of token lengths, clipped to [minimum, maximum] and rounded."""

    mean: float
    std: float
    minimum: int
    maximum: int

    def __post_init__(self) -> None:
        if not 1 <= self.minimum <= self.maximum:
            raise ValueError(f"need 1 <= min <= max, got min {self.minimum}, max {self.maximum}")
        if self.std < 0:
            raise ValueError(f"std must not be negative, got {self.std}")

    def draw(self, count: int, rng: np.random.Generator) -> list[int]:
        values = rng.normal(self.mean, self.std, size=count)
        return [int(v) for v in np.clip(np.rint(values), self.minimum, self.maximum)]


def generate_records(
    tokens: Tokens, count: int, inputs: LengthDistribution, outputs: LengthDistribution, rng: np.random.Generator
) -> list[dict[str, Any]]:
    """`count` custom records whose input (as a prompt) and output (as an answer) have the drawn token lengths."""
    overhead = tokens.special_overhead()
    records = []
    for in_len, out_len in zip(inputs.draw(count, rng), outputs.draw(count, rng), strict=True):
        prompt = tokens.text_of_length(in_len + overhead, rng)
        # An answer is counted without special tokens: build it as a prompt of out_len plus the overhead.
        answer = tokens.text_of_length(out_len + overhead, rng)
        records.append({"input": prompt, "output": answer, "instruction": "NA"})  # as generate_dataset.py writes
    return records


def to_sharegpt(
    records: list[dict[str, Any]], input_field: str, output_field: str, prefix_field: str | None = None
) -> list[dict[str, Any]]:
    """ShareGPT conversations from records; a record missing a named field is an error naming the record."""
    conversations = []
    for i, record in enumerate(records):
        missing = [f for f in (input_field, output_field, prefix_field) if f is not None and f not in record]
        if missing:
            raise DatasetError(f"record {i} has no field {missing[0]!r} (its fields: {sorted(record)})")
        human = str(record[input_field])
        if prefix_field is not None and record[prefix_field]:
            human = f"{record[prefix_field]}\n{human}"
        conversations.append(
            {
                "id": str(record.get("id", i)),
                "conversations": [
                    {"from": "human", "value": human},
                    {"from": "gpt", "value": str(record[output_field])},
                ],
            }
        )
    return conversations
