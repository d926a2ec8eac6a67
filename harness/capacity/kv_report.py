"""What vLLM says about its KV cache at start-up, read from its log.

Two lines matter (vLLM 0.32 `vllm/v1/core/kv_cache_utils.py`; vllm-ascend uses the same code):

- a server that starts logs `CPU KV cache size: 16,384 tokens, Maximum concurrency for 15,360 tokens per request:
  1.07x` (`GPU` on CUDA, `NPU` on Ascend): the tokens its cache holds, whatever max-model-len it was given;
- a server whose max-model-len does not fit refuses with `To serve at least one request with the model's max seq
  len (16384), (1.0 GiB KV cache is needed, which is larger than the available KV cache memory (0.99 GiB). Based on
  the available memory, the estimated maximum model length is 16256. ...`: its own admission check, and its own
  estimate of the longest length that would fit.

A start that ran out of memory before that check (torch's `OutOfMemoryError`, "NPU out of memory", the CPU's
"Cannot allocate memory") is the other refusal a probe may count as "does not fit" (`start_oom`). Any other failed
start says nothing about the length.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SIZE = re.compile(
    r"KV cache size: (?P<tokens>[\d,]+) tokens, Maximum concurrency for (?P<length>[\d,]+) tokens per request: "
    r"(?P<concurrency>[\d.]+)x"
)
_OOM = re.compile(
    r"^.*(?:OutOfMemoryError|[CNG]PU out of memory|out of memory\. Tried to allocate|Cannot allocate memory).*$", re.M
)
_REFUSAL = re.compile(
    r"To serve at least one request with the model's max seq len \((?P<length>\d+)\), \((?P<needed>[\d.]+) GiB KV "
    r"cache is needed, which is larger than the available KV cache memory \((?P<available>[\d.]+) GiB\)\."
    r"(?: Based on the available memory, the estimated maximum model length is (?P<estimate>\d+)\.)?"
)


@dataclass(frozen=True)
class KVCapacity:
    """A started server's KV cache: `tokens` in all, `concurrency` requests of `max_model_len` at once."""

    tokens: int
    max_model_len: int
    concurrency: float


@dataclass(frozen=True)
class KVRefusal:
    """vLLM's refusal to start at `max_model_len`: the line as it wrote it, and its estimate of what fits."""

    max_model_len: int
    needed_gib: float
    available_gib: float
    estimated_max_len: int | None
    line: str


def kv_capacity(log: str) -> KVCapacity | None:
    """The last KV cache size line of a server log, or None (a build that does not log it)."""
    found = list(_SIZE.finditer(log))
    if not found:
        return None
    last = found[-1]
    return KVCapacity(
        int(last["tokens"].replace(",", "")), int(last["length"].replace(",", "")), float(last["concurrency"])
    )


def kv_refusal(log: str) -> KVRefusal | None:
    """vLLM's KV admission refusal in a server log, or None when it failed for another reason (or did not)."""
    found = _REFUSAL.search(log)
    if found is None:
        return None
    estimate = found["estimate"]
    return KVRefusal(
        int(found["length"]),
        float(found["needed"]),
        float(found["available"]),
        int(estimate) if estimate else None,
        found[0],
    )


def start_oom(log: str) -> str | None:
    """The line of a server log that says the start ran out of memory, or None."""
    found = _OOM.search(log)
    return found[0].strip() if found else None
