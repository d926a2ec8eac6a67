"""The serving workloads beyond random prompts, as a plan states them under `suites:`: prompts sharing a prefix
(`suites.prefix`), chat prompts with images (`suites.multimodal`), and workloads from production: a trace replayed
at its own times (`suites.replay`) and multi-turn chat sessions (`suites.sessions`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from harness.config.base import Frozen


class _SharedPrefix(Frozen):
    """Prompts of `prompt-tokens` whose first `prefix-tokens` are the same: the prefix must be the shorter."""

    prefix_tokens: int = Field(ge=1)
    prompt_tokens: int = Field(ge=2)

    @model_validator(mode="after")
    def _prefix_fits(self) -> _SharedPrefix:
        if self.prefix_tokens >= self.prompt_tokens:
            raise ValueError("prefix-tokens must be smaller than prompt-tokens")
        return self


class PrefixSpec(_SharedPrefix):
    """Prompts sharing their first prefix-tokens tokens, sent closed loop (a prefix-cache workload)."""

    output_tokens: int = Field(16, ge=1)
    num_prompts: int = Field(32, ge=1)
    parallel_num: int = Field(4, ge=1)


class MultimodalSpec(Frozen):
    """Chat prompts with one locally generated image each, sent closed loop."""

    height: int = Field(336, ge=8, le=8192)
    width: int = Field(336, ge=8, le=8192)
    prompt_tokens: int = Field(64, ge=2)
    output_tokens: int = Field(16, ge=1)
    num_prompts: int = Field(8, ge=1)
    parallel_num: int = Field(2, ge=1)


class TraceGenerateSpec(Frozen):
    """A Mooncake-format trace made here (harness.load.traces.generate_mooncake), for a machine without one."""

    count: int = Field(200, ge=1, description="requests in the trace")
    rate: float = Field(10.0, gt=0, description="Poisson arrivals per second, before the speed-up")
    shared: int = Field(8, ge=1, description="common prefixes (1-2 blocks each) the requests start with")
    tail_blocks: tuple[int, int] = Field((1, 2), description="min and max blocks of each request's own")
    output_tokens: tuple[int, int] = Field((8, 32), description="min and max output tokens")
    seed: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _ranges(self) -> TraceGenerateSpec:
        for name, (low, high) in (("tail-blocks", self.tail_blocks), ("output-tokens", self.output_tokens)):
            if not 1 <= low <= high:
                raise ValueError(f"{name} must be [min, max] with 1 <= min <= max, got [{low}, {high}]")
        return self


class ReplaySpec(Frozen):
    """A trace's requests sent at the trace's times (divided by `speedup`), its prompts made so that equal hash ids
    are identical blocks of tokens; the prefix-cache hit rate the server measured must agree with the one the trace
    implies within `hit-rate-tolerance`."""

    trace: str | None = Field(None, description="trace file, relative to the plan (Mooncake JSONL or BurstGPT CSV)")
    format: Literal["mooncake", "burstgpt"] = Field("mooncake", description="the trace file's format")
    generate: TraceGenerateSpec | None = Field(None, description="make a Mooncake-format trace instead of a file")
    block_size: int = Field(512, ge=1, description="tokens per hash id (Mooncake's published traces: 512)")
    speedup: float = Field(1.0, gt=0, description="the trace's times are divided by this")
    cache_block: int | None = Field(
        None, ge=1, description="the server's KV block in tokens; default: what its /metrics says, else block-size"
    )
    hit_rate_tolerance: float = Field(0.1, gt=0, lt=1, description="measured vs implied hit rate, absolute")
    max_requests: int | None = Field(None, ge=1, description="replay only the trace's first N requests")

    @model_validator(mode="after")
    def _one_source(self) -> ReplaySpec:
        if (self.trace is None) == (self.generate is None):
            raise ValueError("give either trace (a file) or generate (a trace made here), not both or neither")
        if self.format == "burstgpt" and self.generate is not None:
            raise ValueError("generate makes a Mooncake-format trace: drop format: burstgpt")
        return self


class SessionsSpec(Frozen):
    """`users` chat conversations of `turns` turns each, every turn's prompt the whole history so far; turns run
    in rounds (every user's turn k, then a think time, then turn k+1) so that the server's own prefix-cache
    counters give each turn's hit rate."""

    users: int = Field(8, ge=1)
    turns: int = Field(4, ge=2, description="turns per conversation (the hit rate must rise from turn 1)")
    system_tokens: int = Field(32, ge=0, description="a system prompt shared by every user")
    user_tokens: int = Field(48, ge=1, description="tokens of each user message")
    output_tokens: int = Field(24, ge=1, description="tokens of each answer")
    think_time_s: float = Field(0.5, ge=0, description="pause between one round of turns and the next")
    seed: int = Field(0, ge=0)


class ConsistencySpec(_SharedPrefix):
    """Greedy answers to the same prompts, one at a time and all at once, must be equal (correctness under load)."""

    prompts: int = Field(16, ge=2, description="prompts, all in flight at once in the loaded run")
    prompt_tokens: int = Field(128, ge=2)
    prefix_tokens: int = Field(64, ge=1, description="a prefix the prompts share, so the cache is hit under load")
    output_tokens: int = Field(32, ge=1)
