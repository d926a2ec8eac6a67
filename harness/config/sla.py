"""The SLO rate search's plan section (`suites.sla`): the highest request rate whose latencies meet the objectives."""

from __future__ import annotations

import math

from pydantic import Field, field_validator, model_validator

from harness.config.base import Frozen
from harness.config.errors import did_you_mean

# Latency metrics an objective may bound (the metric dictionary, docs/metrics.md): statistic x latency, in ms.
LATENCIES = ("ttft", "tpot", "itl", "e2el")
STATISTICS = ("mean", "median", "p90", "p99", "max")
LATENCY_METRICS = tuple(f"{s}_{m}_ms" for m in LATENCIES for s in STATISTICS)


class GoodputObjective(Frozen):
    """At least `min-ratio` of the requests each meet every per-request bound given."""

    min_ratio: float = Field(gt=0, le=1)
    ttft_ms: float | None = Field(None, gt=0)
    tpot_ms: float | None = Field(None, gt=0)
    e2el_ms: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _bounded(self) -> GoodputObjective:
        if self.ttft_ms is None and self.tpot_ms is None and self.e2el_ms is None:
            raise ValueError("goodput needs at least one per-request bound: ttft-ms, tpot-ms or e2el-ms")
        return self


class SLASpec(Frozen):
    """Objectives, the rate bracket and the workload of each step (random prompts of exact lengths)."""

    objectives: dict[str, float] = Field(
        default_factory=dict, description="latency metric -> the most it may be, in ms (e.g. p99_ttft_ms: 2000)"
    )
    goodput: GoodputObjective | None = None
    rate_low: float = Field(1.0, gt=0, description="the lowest request rate tried (req/s)")
    rate_high: float = Field(256.0, gt=0, description="the highest request rate tried (req/s)")
    precision: float = Field(0.1, gt=0, le=1, description="the search stops when high / low - 1 is this small")
    max_steps: int = Field(12, ge=2, le=64)
    confidence: float = Field(0.95, gt=0.5, lt=1, description="a rate passes when each objective holds at this")
    repeats: int = Field(3, ge=2, le=20, description="measurements per rate (a verdict needs a spread)")
    prompt_tokens: int = Field(128, ge=2)
    output_tokens: int = Field(32, ge=2)
    num_prompts: int = Field(32, ge=1, description="requests per measurement at least (the protocol may send more)")

    @field_validator("objectives", mode="before")
    @classmethod
    def _underscored(cls, value: object) -> object:
        """`p99-ttft-ms` as the plan's other keys are written, or `p99_ttft_ms` as the metric is named."""
        return {str(k).replace("-", "_"): v for k, v in value.items()} if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _valid(self) -> SLASpec:
        if not self.objectives and self.goodput is None:
            raise ValueError("give objectives (e.g. p99_ttft_ms: 2000) or goodput (min-ratio: 0.95, ttft-ms: 2000)")
        for metric, bound in self.objectives.items():
            if metric not in LATENCY_METRICS:
                hint = did_you_mean(metric, LATENCY_METRICS)
                raise ValueError(f"objective {metric!r} is not a latency metric; {hint}")
            if not (bound > 0 and math.isfinite(bound)):
                raise ValueError(f"objective {metric}: {bound} must be a positive number of milliseconds")
        if not self.rate_low < self.rate_high or math.isinf(self.rate_high):
            raise ValueError(
                f"rate-low {self.rate_low:g} and rate-high {self.rate_high:g} must increase (finite): the bracket the "
                "search starts from"
            )
        return self
