"""The memory a capacity probe gives the server, and the KV cache arithmetic that refuses, before any server
starts, a CPU probe whose first length cannot hold one request."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from harness.config.capacity import CapacitySpec
from harness.config.plan import Plan
from harness.errors import HarnessError

GiB = 1 << 30
DTYPE_BYTES = {"float32": 4, "float": 4, "float16": 2, "half": 2, "bfloat16": 2, "fp8": 1, "fp8_e4m3": 1}


class CapacityInputError(HarnessError):
    """The probe cannot run as asked; raised before any server starts."""


@dataclass(frozen=True)
class Memory:
    """One memory setting of a probe: the CPU's KV space in GiB, or the share of card memory vLLM may use."""

    kv_cache_gib: int | None = None
    utilization: float | None = None

    @property
    def label(self) -> str:
        if self.kv_cache_gib is not None:
            return f"KV {self.kv_cache_gib} GiB"
        return f"{self.utilization:g} of card memory"

    @property
    def slug(self) -> str:
        return f"kv{self.kv_cache_gib}g" if self.kv_cache_gib is not None else f"util{self.utilization:g}"


def memories(plan: Plan, spec: CapacitySpec) -> list[Memory]:
    if plan.platform == "cpu":
        return [Memory(kv_cache_gib=g) for g in spec.kv_cache_gib]
    return [Memory(utilization=spec.memory_utilization)]


def kv_bytes_per_token(model_path: Path, dtype: str, kv_cache_dtype: str) -> int | None:
    """KV cache bytes one token takes over all layers (K and V), from the model's config.json; None when the config
    does not say (a model type without the usual keys)."""
    try:
        config = json.loads((model_path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    config = config.get("text_config", config)
    layers, heads = config.get("num_hidden_layers"), config.get("num_attention_heads")
    hidden = config.get("hidden_size")
    if not (layers and heads and hidden):
        return None
    kv_heads = config.get("num_key_value_heads") or heads
    head_dim = config.get("head_dim") or hidden // heads
    stored = kv_cache_dtype if kv_cache_dtype != "auto" else dtype
    if stored == "auto":
        stored = str(config.get("torch_dtype") or config.get("dtype") or "bfloat16")
    width = DTYPE_BYTES.get(stored)
    return None if width is None else int(2 * layers * kv_heads * head_dim * width)


def check_fits_at_start(plan: Plan, spec: CapacitySpec, model_path: Path) -> None:
    """On the CPU the KV space is known in advance: a probe whose first length cannot hold one request is refused
    here, before any server starts (on NPUs and GPUs only a start can tell)."""
    if plan.platform != "cpu":
        return
    per_token = kv_bytes_per_token(model_path, plan.server.dtype, plan.server.kv_cache_dtype)
    if per_token is None:
        return
    for cards in spec.tensor_parallel:
        for memory in memories(plan, spec):
            assert memory.kv_cache_gib is not None
            needed = spec.start * per_token / cards  # each rank holds its share of the KV heads
            if needed > memory.kv_cache_gib * GiB:
                raise CapacityInputError(
                    f"{plan.source}: suites.capacity: the model does not fit at the smallest length ({spec.start} "
                    f"tokens) on {cards} card(s): one request needs {needed / GiB:.2f} GiB of KV cache per card "
                    f"({per_token} bytes per token) and the probe gives {memory.kv_cache_gib} GiB; lower "
                    "suites.capacity.start or raise kv-cache-gib"
                )
