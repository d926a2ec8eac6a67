"""The capacity probe's plan section (`suites.capacity`): how long a context fits on how many cards.

The method is the ModelArts guides' appendix: per tensor-parallel size, start the server at max-model-len 4K, 8K,
16K... (doubling), then bisect between the last length that served and the first that did not, down to
`granularity` tokens. A length "serves" when the server starts and a small static benchmark at it completes.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from harness.config.base import Frozen
from harness.config.model import ModelSpec


class LengthBenchSpec(Frozen):
    """The static benchmark run at each length that started: `prompt-tokens: max` fills the length (less the
    output), as on hardware where a long prefill can fail although the server started."""

    prompt_tokens: int | Literal["max"] = "max"
    output_tokens: int = Field(16, ge=1)
    parallel_num: int = Field(1, ge=1)
    request_timeout_s: float = Field(600.0, gt=0)


class CapacitySpec(Frozen):
    """What the probe searches and how (every length in tokens)."""

    model: ModelSpec | None = Field(None, description="the model to probe (default: the plan's model, untrained)")
    tensor_parallel: tuple[int, ...] = Field((1,), min_length=1, description="card counts to probe, increasing")
    memory_utilization: float = Field(0.9, gt=0, le=1, description="--gpu-memory-utilization on NPU and GPU")
    kv_cache_gib: tuple[int, ...] = Field(
        (4,), min_length=1, description="CPU: VLLM_CPU_KVCACHE_SPACE per probe (whole GiB), the card memory's stand-in"
    )
    start: int = Field(4096, ge=16, description="the first max-model-len tried")
    granularity: int = Field(1024, ge=1, description="the search stops when the bracket is this narrow")
    max_length: int = Field(131_072, ge=16, description="the longest max-model-len tried")
    use_reported_capacity: bool = Field(
        True,
        description="jump to the length vLLM's own KV report allows (its KV cache size, its refusal's estimate) "
        "instead of starting every doubling and bisection step; the answer and the first length above it are "
        "always started",
    )
    bench: LengthBenchSpec = LengthBenchSpec()
    deadline_s: float = Field(3600.0, gt=0, description="deadline of the whole probe (every size and memory)")

    @model_validator(mode="after")
    def _ordered(self) -> CapacitySpec:
        if list(self.tensor_parallel) != sorted(set(self.tensor_parallel)) or min(self.tensor_parallel) < 1:
            raise ValueError(
                f"tensor-parallel {list(self.tensor_parallel)} must be increasing card counts, e.g. [1, 2, 4, 8]"
            )
        if list(self.kv_cache_gib) != sorted(set(self.kv_cache_gib)) or min(self.kv_cache_gib) < 1:
            raise ValueError(f"kv-cache-gib {list(self.kv_cache_gib)} must be increasing whole GiB, e.g. [1, 2]")
        if self.max_length < self.start:
            raise ValueError(f"max-length {self.max_length} is below start {self.start}: the bracket must increase")
        if self.granularity > self.start:
            raise ValueError(f"granularity {self.granularity} is coarser than start {self.start}")
        fixed = self.bench.prompt_tokens
        if fixed != "max" and fixed + self.bench.output_tokens > self.start:
            raise ValueError(
                f"bench prompt-tokens {fixed} + output-tokens {self.bench.output_tokens} exceed start {self.start}: "
                "the benchmark must fit the shortest length (or use prompt-tokens: max)"
            )
        return self
