"""The search for the highest request rate that meets the latency objectives (the knee). Pure.

Each step measures one rate (the caller's function: a dynamic case with repeats) and judges every objective with
confidence (harness.gates.slo): the rate is **sustainable** only when every objective holds. From `rate-low`, the
rate doubles until a step is not sustainable (or `rate-high` is reached), then the bracket between the highest
sustainable rate and the lowest unsustainable one above it is bisected geometrically (rates are ratios) until
`high / low - 1 <= precision`. The answer is the knee with its interval: sustainable at `low`, not at `high`.

Measurements are noisy: a rate may fail and a higher one pass. The bracket is then taken around the highest rate
that passed, and the result says that the steps were not monotonic.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from harness.gates.slo import ObjectiveVerdict


@dataclass(frozen=True)
class RateStep:
    """One rate measured: every objective's verdict, and why the step does not count when it does not."""

    rate: float
    verdicts: tuple[ObjectiveVerdict, ...]
    invalid: str = ""  # the measurement is not one (the client fell behind, requests failed)
    metrics: dict[str, list[float | None]] = field(default_factory=dict)  # per repeat, for the plot

    @property
    def sustainable(self) -> bool:
        return not self.invalid and all(v.outcome == "holds" for v in self.verdicts)

    @property
    def reason(self) -> str:
        if self.invalid:
            return f"not a valid measurement: {self.invalid}"
        return "; ".join(v.message for v in self.verdicts)

    def as_json(self) -> dict[str, object]:
        return {
            "rate": self.rate,
            "sustainable": self.sustainable,
            "invalid": self.invalid,
            "verdicts": [v.as_json() for v in self.verdicts],
            "metrics": self.metrics,
        }


@dataclass(frozen=True)
class RateBounds:
    low: float
    high: float
    precision: float
    max_steps: int


@dataclass
class RateSearch:
    bounds: RateBounds
    steps: list[RateStep] = field(default_factory=list)
    stopped: str | None = None

    @property
    def knee(self) -> float | None:
        """The highest sustainable rate measured (None: not even the lowest)."""
        passed = [s.rate for s in self.steps if s.sustainable]
        return max(passed) if passed else None

    @property
    def above(self) -> float | None:
        """The lowest unsustainable rate above the knee (None: every rate up to the highest tried held)."""
        knee = self.knee or 0.0
        failed = [s.rate for s in self.steps if not s.sustainable and s.rate > knee]
        return min(failed) if failed else None

    @property
    def monotonic(self) -> bool:
        knee = self.knee
        return knee is None or all(s.sustainable for s in self.steps if s.rate < knee)

    def next_rate(self) -> float | None:
        b = self.bounds
        if not self.steps:
            return b.low
        knee, above = self.knee, self.above
        if knee is None:
            return None  # the lowest rate already misses the objectives
        if above is None:
            return None if knee >= b.high else min(knee * 2, b.high)
        if above / knee - 1 <= b.precision:
            return None
        return _round(math.sqrt(knee * above))


def _round(rate: float) -> float:
    """A rate written with three significant digits (a report reads 11.3 req/s, not 11.313708498984761)."""
    digits = 2 - math.floor(math.log10(rate))
    return round(rate, digits)


def search_rate(
    bounds: RateBounds, measure: Callable[[float], RateStep], told: Callable[[RateStep], None]
) -> RateSearch:
    """Measure rates until the bracket closes or `max-steps` rates were measured (then `stopped` says so)."""
    state = RateSearch(bounds)
    while (rate := state.next_rate()) is not None:
        if len(state.steps) >= bounds.max_steps:
            state.stopped = f"stopped after max-steps ({bounds.max_steps}) rates; the bracket is still open"
            break
        step = measure(rate)
        state.steps.append(step)
        told(step)
    return state
