"""Dataset files engineers benchmark with, read in their public formats, in a registry by name.

| name       | file                                                                                      |
|------------|-------------------------------------------------------------------------------------------|
| sharegpt   | JSON list of {"conversations": [{"from": "human", "value"}, {"from": "gpt", "value"}, ...]} |
| alpaca     | JSON list of {"instruction", "input", "output"}                                           |
| custom     | JSON list (or JSONL) of {"input", "output"}, as `llmqual dataset generate` writes          |
| human-eval | JSONL of {"task_id", "prompt", "canonical_solution", ...}                                 |

Each loader turns a file into Samples: the prompt text, its length in the served tokenizer, and the output length
to ask for (the length of the reference answer). Unreadable, empty or malformed files raise DatasetError naming
the file and the fix, before any request is sent.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from harness.config.errors import did_you_mean
from harness.errors import HarnessError
from harness.load.samples import Sample
from harness.load.tokens import Tokens


class DatasetError(HarnessError):
    """A dataset file cannot be used; the message names the file and what to do."""


Loader = Callable[[list[dict[str, Any]], Tokens], Iterator[tuple[str, str]]]
LOADERS: dict[str, Loader] = {}


def register(name: str) -> Callable[[Loader], Loader]:
    def add(loader: Loader) -> Loader:
        LOADERS[name] = loader
        return loader

    return add


def read_records(path: str | Path, encoding: str = "utf-8") -> list[dict[str, Any]]:
    """Records of a JSON list or a JSONL file."""
    try:
        text = Path(path).read_text(encoding=encoding)
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read the dataset: {exc}") from exc
    stripped = text.lstrip("\ufeff").strip()
    if not stripped:
        raise DatasetError(f"{path}: the dataset is empty")
    try:
        data = json.loads(stripped) if stripped.startswith("[") else [json.loads(x) for x in stripped.splitlines() if x]
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not JSON or JSON Lines ({exc})") from exc
    if not data or not all(isinstance(r, dict) for r in data):
        raise DatasetError(f"{path}: expected a non-empty list of JSON objects")
    return data


def _field(record: dict[str, Any], key: str, index: int) -> str:
    value = record.get(key)
    if not isinstance(value, str):
        raise KeyError(f"record {index} has no text field {key!r} (its keys: {sorted(record)})")
    return value


@register("sharegpt")
def _sharegpt(records: list[dict[str, Any]], tokens: Tokens) -> Iterator[tuple[str, str]]:
    for i, record in enumerate(records):
        turns = record.get("conversations") or record.get("conversation")
        if not isinstance(turns, list):
            raise KeyError(f"record {i} has no 'conversations' list")
        if len(turns) >= 2:  # like vllm bench serve: the first human turn and the answer to it
            yield _field(turns[0], "value", i), _field(turns[1], "value", i)


@register("alpaca")
def _alpaca(records: list[dict[str, Any]], tokens: Tokens) -> Iterator[tuple[str, str]]:
    for i, record in enumerate(records):
        extra = record.get("input") or ""
        prompt = _field(record, "instruction", i) + (f"\n{extra}" if extra else "")
        yield prompt, _field(record, "output", i)


@register("custom")
def _custom(records: list[dict[str, Any]], tokens: Tokens) -> Iterator[tuple[str, str]]:
    for i, record in enumerate(records):
        yield _field(record, "input", i), _field(record, "output", i)


@register("human-eval")
def _human_eval(records: list[dict[str, Any]], tokens: Tokens) -> Iterator[tuple[str, str]]:
    for i, record in enumerate(records):
        yield _field(record, "prompt", i), _field(record, "canonical_solution", i)


def load_dataset(path: str | Path, kind: str, tokens: Tokens) -> list[Sample]:
    """Every usable sample of a dataset file (answers of zero tokens are skipped: nothing to ask for)."""
    if kind not in LOADERS:
        raise DatasetError(f"unknown dataset type {kind!r}: {did_you_mean(kind, LOADERS)}")
    records = read_records(path)
    try:
        pairs = list(LOADERS[kind](records, tokens))
    except KeyError as exc:
        raise DatasetError(f"{path}: not a {kind} dataset: {exc.args[0]} (fix: pass the right --dataset-type)") from exc
    samples = [Sample(p, tokens.prompt_len(p), tokens.output_len(o)) for p, o in pairs]
    samples = [s for s in samples if s.output_len > 0]
    if not samples:
        raise DatasetError(f"{path}: no record of this {kind} dataset has both a prompt and an answer")
    return samples


def select(
    samples: list[Sample],
    count: int,
    max_prompt_tokens: int | None = None,
    max_tokens: int | None = None,
    fixed_output_len: int | None = None,
) -> list[Sample]:
    """`count` samples in file order after the length filters, reusing the file from the top if it is shorter.

    `fixed_output_len` asks every request for that many tokens instead of its answer's length (as
    `vllm bench serve --sharegpt-output-len` does); the max-tokens filter then no longer applies.
    """
    if fixed_output_len is not None:
        samples = [dataclasses.replace(s, output_len=fixed_output_len) for s in samples]
        max_tokens = None
    kept = [
        s
        for s in samples
        if (max_prompt_tokens is None or s.prompt_len <= max_prompt_tokens)
        and (max_tokens is None or s.output_len <= max_tokens)
    ]
    if not kept:
        raise DatasetError(
            f"no sample passes the filters (max-prompt-tokens {max_prompt_tokens}, max-tokens {max_tokens}); "
            "raise them or use a dataset of shorter records"
        )
    return [kept[i % len(kept)] for i in range(count)]
