"""The synthetic SFT data teaches exactly what the offline accuracy tasks ask, in their template."""

from __future__ import annotations

from harness.accuracy.offline_data import arithmetic_records, question
from harness.training.instruct_data import alpaca_records, sft_pairs


def test_every_fact_of_the_tasks_is_taught_in_their_template() -> None:
    pairs = dict(sft_pairs())
    assert len(pairs) == 100
    for record in arithmetic_records():
        assert pairs[question(record["a"], record["b"])] == " " + record["answer"]


def test_records_are_alpaca_shaped() -> None:
    first = alpaca_records()[0]
    assert set(first) == {"instruction", "input", "output"}
    assert first["instruction"].startswith("What is ")
