"""Does a latency objective hold at a load, with confidence? Pure.

A rate's measurements are its repeats: one value of the metric each (say p99 TTFT). The objective "at most B"
**holds** when the upper one-sided confidence bound of the mean (Student's t over the repeats) is at most B, is
**violated** when the lower bound is above B, and is **uncertain** otherwise (more repeats would tell). "At least
B" (goodput ratio) is the mirror image. The SLO search counts only a rate where every objective holds as
sustainable: an uncertain rate is not one a release engineer can sign off.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from harness.gates.gate import t_quantile

SLOOutcome = Literal["holds", "violated", "uncertain"]


@dataclass(frozen=True)
class ObjectiveVerdict:
    metric: str
    bound: float
    at_most: bool  # True: the metric must stay at or below `bound`
    outcome: SLOOutcome
    mean: float | None
    low: float | None
    high: float | None
    values: tuple[float, ...]

    @property
    def message(self) -> str:
        sign = "<=" if self.at_most else ">="
        if self.mean is None:
            return f"{self.metric} {sign} {self.bound:g}: not measured ({self.outcome})"
        return (
            f"{self.metric} {sign} {self.bound:g}: mean {self.mean:.4g} ({self.low:.4g} .. {self.high:.4g}) "
            f"over {len(self.values)} repeats: {self.outcome}"
        )

    def as_json(self) -> dict[str, object]:
        return {**vars(self), "values": list(self.values), "message": self.message}


def objective_verdict(
    metric: str, bound: float, values: Sequence[float | None], confidence: float, at_most: bool = True
) -> ObjectiveVerdict:
    """The verdict on `metric <= bound` (or `>=`) from one value per repeat; a missing value makes it uncertain."""
    clean = tuple(float(v) for v in values if v is not None and math.isfinite(float(v)))
    if len(clean) < 2 or len(clean) < len(values):
        mean = statistics.fmean(clean) if clean else None
        return ObjectiveVerdict(metric, bound, at_most, "uncertain", mean, mean, mean, clean)
    mean = statistics.fmean(clean)
    se = statistics.stdev(clean) / math.sqrt(len(clean))
    margin = t_quantile(confidence, len(clean) - 1) * se
    low, high = mean - margin, mean + margin
    worst, best = (high, low) if at_most else (low, high)
    outcome: SLOOutcome = "uncertain"
    if _met(worst, bound, at_most):
        outcome = "holds"
    elif not _met(best, bound, at_most):
        outcome = "violated"
    return ObjectiveVerdict(metric, bound, at_most, outcome, mean, low, high, clean)


def _met(value: float, bound: float, at_most: bool) -> bool:
    return value <= bound if at_most else value >= bound
