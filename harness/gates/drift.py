"""The run-to-run drift a gate allows for (`GatePolicy.between_runs`), measured from a plan's own past runs.

A plan's `gates.between-runs` is a constant written for a class of machines; the host a comparison runs on may
drift far less (or more). With at least MIN_RUNS finished runs of the plan on this host, each case's relative
standard deviation of a metric across those runs is a measurement of that drift; the median over the cases is
the estimate. An SD from n runs is itself uncertain (its relative standard error is about 1/sqrt(2(n-1))), so the
gate uses the estimate's upper 90% confidence bound, chi-square with n-1 degrees of freedom: with 5 runs it is
1.94 times the estimate, with 10 runs 1.47 times. Pure: values in, a Drift out.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

MIN_RUNS = 5  # fewer give an SD too uncertain to replace the plan's constant (its bound is over 1.94x the estimate)
UPPER = 0.90  # the one-sided confidence of the bound the gate uses


@dataclass(frozen=True)
class Drift:
    """A metric's measured drift: `estimate` (median relative SD over `cases` cases, each over about `runs` runs)
    and `bound`, the upper confidence bound the gate uses as between_runs."""

    metric: str
    estimate: float
    bound: float
    runs: int
    cases: int

    def describe(self) -> str:
        return (
            f"drift {self.bound:.1%} measured (upper {UPPER:.0%} bound of {self.estimate:.1%}, the median rel. SD of "
            f"{self.cases} case(s) over {self.runs} runs on this host)"
        )


def _chi2_quantile(p: float, k: int) -> float:
    """The p-quantile of chi-square with k degrees of freedom (Wilson-Hilferty; within 1% for k >= 3)."""
    z = statistics.NormalDist().inv_cdf(p)
    return float(k * (1 - 2 / (9 * k) + z * math.sqrt(2 / (9 * k))) ** 3)


def measured_drift(metric: str, per_case: Mapping[str, Sequence[float]], min_runs: int = MIN_RUNS) -> Drift | None:
    """The drift of `metric` from each case's values in past runs (one value per run); None with fewer than
    `min_runs` runs of any case (the plan's constant applies)."""
    spreads, counts = [], []
    for values in per_case.values():
        finite = [v for v in values if math.isfinite(v)]
        mean = statistics.fmean(finite) if finite else 0.0
        if len(finite) >= min_runs and mean != 0:
            spreads.append(statistics.stdev(finite) / abs(mean))
            counts.append(len(finite))
    if not spreads:
        return None
    runs = int(statistics.median(counts))
    estimate = statistics.median(spreads)
    bound = estimate * math.sqrt((runs - 1) / _chi2_quantile(1 - UPPER, runs - 1))
    return Drift(metric, estimate, bound, runs, len(spreads))


def plan_constant(between_runs: float, why: str) -> str:
    """How a verdict says it used the plan's constant drift."""
    return f"drift {between_runs:.0%}, the plan's gates.between-runs ({why})"
