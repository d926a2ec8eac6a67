"""Production traces, read and made: Mooncake's JSONL and BurstGPT's CSV, and a generator of Mooncake-format traces
for the CPU default.

A **Mooncake trace** has one JSON object per line:

- `timestamp`: the arrival in milliseconds since the first request;
- `input_length` and `output_length`: in tokens;
- `hash_ids`: one id per 512-token block of the input, the last block possibly partial. Equal ids at the start of
  two requests mean an equal prefix, so a prefix cache can reuse it.

**BurstGPT's CSV** has a header with `Timestamp` (seconds), `Model`, `Request tokens`, `Response tokens`,
`Total tokens` and `Log Type`. It carries no prefix information: every request is its own blocks. Rows with
0 response tokens are failed requests of the original service and are left out, counted.

`implied_hit_rate` is what an unbounded prefix cache of whole blocks would hit on the trace: the share of input
tokens in blocks whose whole prefix of ids was seen before. It is the figure a replay's measured prefix-cache hit
rate is compared with.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.load.datasets import DatasetError
from harness.load.samples import Sample

MOONCAKE_BLOCK = 512  # tokens per hash id in Mooncake's published traces
BURSTGPT_COLUMNS = ("Timestamp", "Request tokens", "Response tokens")


@dataclass(frozen=True)
class TraceRequest:
    """One request of a trace: when it arrives (seconds after the first) and what it asks."""

    arrival_s: float
    input_length: int
    output_length: int
    hash_ids: tuple[int, ...]


@dataclass(frozen=True)
class Trace:
    requests: tuple[TraceRequest, ...]
    block_size: int
    left_out: int = 0  # rows of the file not replayable (BurstGPT's failed requests)


def _count(value: Any, where: str, field: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise DatasetError(f"{where}: {field} is {value!r}; it must be a whole number of tokens >= {minimum}")
    return value


def read_mooncake(path: str | Path, block_size: int = MOONCAKE_BLOCK) -> Trace:
    """A Mooncake JSONL trace, checked line by line (file, line and field named), in arrival order."""
    requests = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DatasetError(f"cannot read the trace {path}: {exc.strerror}") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{where}: not JSON ({exc.msg}); a Mooncake trace has one object per line") from None
        if not isinstance(record, dict):
            raise DatasetError(f"{where}: a {type(record).__name__}, not an object with timestamp, input_length, ...")
        timestamp = record.get("timestamp")
        if isinstance(timestamp, bool) or not isinstance(timestamp, int | float) or timestamp < 0:
            raise DatasetError(f"{where}: timestamp is {timestamp!r}; it must be milliseconds >= 0")
        length = _count(record.get("input_length"), where, "input_length", 1)
        output = _count(record.get("output_length"), where, "output_length", 1)
        ids = record.get("hash_ids")
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise DatasetError(f"{where}: hash_ids is {ids!r}; it must be a list of integers")
        if len(ids) != math.ceil(length / block_size):
            raise DatasetError(
                f"{where}: {len(ids)} hash_ids for {length} input tokens; blocks of {block_size} need "
                f"{math.ceil(length / block_size)} (set the trace's block size if it is not {block_size})"
            )
        requests.append(TraceRequest(timestamp / 1000.0, length, output, tuple(ids)))
    if not requests:
        raise DatasetError(f"{path}: no requests in the trace")
    return Trace(tuple(sorted(requests, key=lambda r: r.arrival_s)), block_size)


def read_burstgpt(path: str | Path, block_size: int = MOONCAKE_BLOCK) -> Trace:
    """A BurstGPT CSV, arrival times made relative to the first request; each request gets blocks of its own."""
    try:
        with Path(path).open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise DatasetError(f"cannot read the trace {path}: {exc.strerror}") from exc
    missing = [c for c in BURSTGPT_COLUMNS if rows and c not in rows[0]]
    if not rows or missing:
        raise DatasetError(f"{path}: not a BurstGPT CSV (columns {list(BURSTGPT_COLUMNS)} needed; missing {missing})")
    parsed, left_out, next_id = [], 0, 0
    for number, row in enumerate(rows, 2):
        where = f"{path}:{number}"
        try:
            arrival, length, output = float(row["Timestamp"]), int(row["Request tokens"]), int(row["Response tokens"])
        except ValueError:
            raise DatasetError(f"{where}: Timestamp, Request tokens and Response tokens must be numbers") from None
        if output == 0 or length == 0:
            left_out += 1
            continue
        blocks = math.ceil(length / block_size)
        parsed.append(TraceRequest(arrival, length, output, tuple(range(next_id, next_id + blocks))))
        next_id += blocks
    if not parsed:
        raise DatasetError(f"{path}: every row has 0 request or response tokens; nothing to replay")
    first = min(r.arrival_s for r in parsed)
    shifted = [TraceRequest(r.arrival_s - first, r.input_length, r.output_length, r.hash_ids) for r in parsed]
    return Trace(tuple(sorted(shifted, key=lambda r: r.arrival_s)), block_size, left_out)


def implied_hit_rate(trace: Trace, cache_block: int | None = None) -> float:
    """The share of input tokens an unbounded prefix cache would serve from cache, in whole blocks of `cache_block`
    tokens (the engine's KV block; the trace's own block when None). A request reuses its leading trace blocks whose
    whole prefix of ids was seen before, at most all but its last token (an engine computes at least one prompt
    token), rounded down to whole cache blocks."""
    cache = cache_block or trace.block_size
    seen: set[tuple[int, ...]] = set()
    hit = total = 0
    for request in trace.requests:
        total += request.input_length
        leading = 0
        for end in range(1, len(request.hash_ids) + 1):
            prefix = request.hash_ids[:end]
            full = end * trace.block_size <= request.input_length  # a partial last block is never cached
            if full and prefix in seen and leading == end - 1:
                leading = end
            if full:
                seen.add(prefix)
        reusable = min(leading * trace.block_size, request.input_length - 1)
        hit += reusable // cache * cache
    return hit / total if total else 0.0


def trace_samples(trace: Trace, vocabulary: Sequence[int] | np.ndarray, seed: int) -> list[Sample]:
    """The trace's requests as token-id prompts: each hash id becomes a block of `block_size` ids drawn from
    `vocabulary` by a generator seeded with (seed, id), so equal ids give identical blocks and different ids (all
    but surely) different ones; each prompt is cut to its `input_length`."""
    if len(vocabulary) == 0:
        raise ValueError("an empty vocabulary cannot make prompts")
    choices = np.asarray(vocabulary)
    blocks: dict[int, np.ndarray] = {}

    def block(hash_id: int) -> np.ndarray:
        if hash_id not in blocks:
            rng = np.random.default_rng([seed, hash_id & 0xFFFFFFFF, hash_id >> 32 & 0xFFFFFFFF])
            blocks[hash_id] = rng.choice(choices, size=trace.block_size)
        return blocks[hash_id]

    samples = []
    for request in trace.requests:
        ids = np.concatenate([block(h) for h in request.hash_ids])[: request.input_length]
        prompt = tuple(int(i) for i in ids)
        samples.append(Sample("", request.input_length, request.output_length, prompt_ids=prompt))
    return samples


def generate_mooncake(
    count: int, rate: float, block_size: int, shared: int, tail: tuple[int, int], output: tuple[int, int], seed: int
) -> list[dict[str, Any]]:
    """A Mooncake-format trace: Poisson arrivals at `rate` req/s; each request starts with one of `shared` common
    prefixes (1-2 blocks, as a system prompt or a conversation so far) and adds `tail` (min, max) blocks of its own."""
    rng = np.random.default_rng(seed)
    prefixes = [list(range(i * 2, i * 2 + int(rng.integers(1, 3)))) for i in range(shared)]
    next_id = shared * 2
    arrival, lines = 0.0, []
    for _ in range(count):
        prefix = prefixes[int(rng.integers(shared))]
        own = int(rng.integers(tail[0], tail[1] + 1))
        ids = [*prefix, *range(next_id, next_id + own)]
        next_id += own
        length = (len(ids) - 1) * block_size + int(rng.integers(1, block_size + 1))
        lines.append(
            {
                "timestamp": round(arrival * 1000),
                "input_length": length,
                "output_length": int(rng.integers(output[0], output[1] + 1)),
                "hash_ids": ids,
            }
        )
        arrival += float(rng.exponential(1.0 / rate))
    return lines
