"""The plan's `gates:` section: how many times each case is measured and how a run is judged against its baseline."""

from __future__ import annotations

from pydantic import Field, model_validator

from harness.config.base import Frozen
from harness.gates.gate import GatePolicy
from harness.gates.policy import (
    DEFAULT_BASELINE_SAMPLES,
    DEFAULT_CONFIDENCE,
    DEFAULT_DETECT,
    DEFAULT_REPEATS,
    DEFAULT_TOLERANCE,
)


class GatesSpec(Frozen):
    repeats: int = Field(DEFAULT_REPEATS, ge=1, le=100, description="measurements of each serving case")
    baseline: str | None = Field(None, description="baseline file; default fixtures/baselines/runs/<plan name>.yaml")
    keep_samples: int = Field(DEFAULT_BASELINE_SAMPLES, ge=2, description="measurements a baseline keeps per metric")
    tolerance: float = Field(DEFAULT_TOLERANCE, gt=0, lt=1, description="a regression must be worse than this")
    detect: float = Field(DEFAULT_DETECT, gt=0, lt=1, description="a pass must rule out a regression this large")
    confidence: float = Field(DEFAULT_CONFIDENCE, gt=0.5, lt=1)
    between_runs: float = Field(
        0.0, ge=0, lt=1, description="relative SD of a run's mean between runs on this machine class (measured)"
    )
    enforce: bool = Field(True, description="a failed gate fails its test; false: verdicts are reported only")

    @model_validator(mode="after")
    def _ordered(self) -> GatesSpec:
        if self.detect < self.tolerance:
            raise ValueError("gates.detect must be at least gates.tolerance")
        return self

    def policy(self) -> GatePolicy:
        """The gate policy these settings make."""
        return GatePolicy(self.tolerance, self.detect, self.confidence, self.between_runs)
