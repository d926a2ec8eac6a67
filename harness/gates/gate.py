"""The gate: is a run's metric worse than its baseline, beyond noise and beyond what matters? Pure.

Both sides are samples: the candidate's repeats of a case and the baseline's recorded runs. The relative change of
the mean, signed so that negative is worse, gets a one-sided confidence bound from Welch's t (the pooled spread of
the side that has one when only one has). With `tolerance` the change that does not matter:

- pass: even the pessimistic bound is within tolerance (`low >= -tolerance`);
- fail: the optimistic bound is still worse than no change, and the estimate is worse than tolerance
  (`high < 0 and change < -tolerance`): a regression that is both real and material;
- inconclusive: neither; more repeats narrow the bounds. Also when a side has no data or no spread is known.

The default confidence and repeats are chosen by the simulation in tests/unit/test_gates.py: at a run-to-run
spread of 2% they keep false failures on unchanged noise under 1% and catch a 5% regression 95% of the time.

Every verdict states its own **resolution**: the smallest regression this comparison would fail 95% of the time,
given the spread it measured and its sample counts: max(tolerance, t x se) + z(0.95) x se, relative to the
baseline mean (the textbook minimum detectable effect, (t_conf + z_power) x se, floored by the tolerance). A plan
can only claim to catch what is beyond its resolution; `gates.detect` should not be set below it.

Two runs are not two samples of one distribution: a run's mean moves with things its repeats do not see (which
server instance it got, the state of a shared host). `between_runs` is that drift, the relative standard deviation
of a run's mean from run to run on the plan's machine class; `gate` (run against baseline, run against run) adds
it to the noise of both sides, `2 x between_runs^2` to the relative variance, so the bounds and the resolution it
states cover it. Zero (the default) claims a machine whose runs agree as well as their repeats do.

`paired_gate` judges an A/B comparison measured in one run, reference and candidate interleaved (ABBA...): the
relative difference of each pair cancels what drifts between pairs (another tenant, thermal state), so its spread
is the noise that matters. A window on shared cores now and then stalls for seconds (one in 24 measured here), a
difference of +240% in a pair whose neighbours differ by 5%: so the paired gate judges the **median** of the
paired differences, with distribution-free bounds (the sign test's order statistics: the median lies above the
k-th smallest difference with the policy's confidence), which one stalled pair moves by one rank at most. Same
rule; its resolution uses the median's standard error at the spread the middle half of the pairs shows
(1.2533 x 1.4826 x MAD / sqrt(n)). Seven pairs at least at 99% (2^-7 < 1%).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from harness.gates.directions import direction
from harness.gates.verdict import Outcome, Verdict


@dataclass(frozen=True)
class GatePolicy:
    tolerance: float = 0.02  # a regression must be worse than this to fail
    detect: float = 0.05  # a pass rules out a regression this large
    confidence: float = 0.99  # of each one-sided bound
    between_runs: float = 0.0  # relative SD of a run's mean between runs (machine drift; not used by paired_gate)


def _clean(values: Sequence[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def _spread(base: list[float], cand: list[float]) -> tuple[float, float] | None:
    """(standard error of the difference of means, degrees of freedom), or None if no spread is known."""
    nb, nc = len(base), len(cand)
    vb = statistics.variance(base) if nb >= 2 else None
    vc = statistics.variance(cand) if nc >= 2 else None
    if vb is None and vc is None:
        return None
    if vb is None or vc is None:  # one side's spread stands for both (unchanged noise)
        var, dof = (vb, nb - 1) if vb is not None else (float(vc or 0.0), nc - 1)
        return math.sqrt(var / nb + var / nc), float(dof)
    se2 = vb / nb + vc / nc
    if se2 == 0:
        return 0.0, float(nb + nc - 2)
    df = se2**2 / ((vb / nb) ** 2 / (nb - 1) + (vc / nc) ** 2 / (nc - 1))
    return math.sqrt(se2), df


def t_quantile(confidence: float, df: float) -> float:
    """Student's t quantile. scipy is imported here, not with the module: its stats package costs 0.7 s of CPU
    at start-up, which every `llmqual` command would pay (the config package imports the gate's policy)."""
    from scipy import stats

    return float(stats.t.ppf(confidence, df))


POWER_Z = 1.6448536269514722  # z of 95%: the power at which the resolution is stated


def _resolution(margin: float, se_rel: float, policy: GatePolicy) -> float:
    return max(policy.tolerance, margin) + POWER_Z * se_rel


def _judge(
    metric: str, change: float, low: float, high: float, res: float, policy: GatePolicy, numbers: str, more: str
) -> tuple[Outcome, str]:
    """The rule, on a change with its bounds (`numbers` states them; `more` is what narrows them)."""
    if high < 0 and change < -policy.tolerance:
        return "fail", f"{metric}: worse by {numbers}, beyond the {policy.tolerance:.0%} tolerance"
    if low > -policy.detect:
        return "pass", f"{metric}: {numbers}; rules out a regression of {policy.detect:.0%}"
    return "inconclusive", f"{metric}: {numbers}; cannot rule out a regression of {policy.detect:.0%}: add {more}"


def _decide(
    metric: str, change: float, se_rel: float, df: float, policy: GatePolicy, counts: str
) -> tuple[Outcome, str, float, float, float]:
    """(outcome, message, low, high, resolution) for a relative `change` with standard error `se_rel`."""
    margin = t_quantile(policy.confidence, df) * se_rel if se_rel > 0 else 0.0
    low, high = change - margin, change + margin
    res = _resolution(margin, se_rel, policy)
    numbers = f"{change:+.2%} ({low:+.2%} .. {high:+.2%} at {policy.confidence:.0%}; {counts}; resolution {res:.1%})"
    return (*_judge(metric, change, low, high, res, policy, numbers, "repeats"), low, high, res)


def gate(
    metric: str,
    baseline: Sequence[float | None],
    candidate: Sequence[float | None],
    policy: GatePolicy = GatePolicy(),
    sign: int | None = None,
) -> Verdict:
    """Compare `candidate` samples of `metric` with `baseline` samples; `sign` overrides the metric's direction."""
    sign = sign if sign is not None else direction(metric)
    base, cand = _clean(baseline), _clean(candidate)
    nb, nc = len(base), len(cand)
    if sign is None:
        return Verdict(
            metric, "inconclusive", f"{metric}: no known direction (not gated)", n_baseline=nb, n_candidate=nc
        )
    if not base or not cand:
        side = "baseline" if not base else "run"
        return Verdict(metric, "inconclusive", f"{metric}: the {side} has no value", n_baseline=nb, n_candidate=nc)
    mb, mc = statistics.fmean(base), statistics.fmean(cand)

    def result(outcome: Outcome, message: str, *bounds: float | None) -> Verdict:
        change, low, high = (*bounds, None, None, None)[:3]
        return Verdict(metric, outcome, message, change, low, high, mb, mc, nb, nc)

    if mb == 0:
        return result("inconclusive", f"{metric}: the baseline is 0, no relative change")
    spread = _spread(base, cand)
    change = sign * (mc - mb) / abs(mb)
    if spread is None:
        return result(
            "inconclusive",
            f"{metric}: {change:+.2%} but no spread is known (one value each side); repeat the case or record the "
            "baseline from several runs",
            change,
        )
    se, df = spread
    within, drift = (se / abs(mb)) ** 2, 2 * policy.between_runs**2
    se_rel = math.sqrt(within + drift)
    if drift:
        # The drift is a plan constant measured over many runs, not estimated from these repeats: only the repeats'
        # share of the variance carries their few degrees of freedom (Welch-Satterthwaite).
        df = (within + drift) ** 2 / (within**2 / df) if within > 0 else math.inf
    outcome, text, low, high, res = _decide(metric, change, se_rel, df, policy, f"n={nb}/{nc}")
    return dataclasses.replace(result(outcome, text, change, low, high), resolution=res)


def sign_test_rank(n: int, confidence: float) -> int | None:
    """The largest k (1-based) with P(Binomial(n, 1/2) <= k - 1) <= 1 - confidence: the sorted differences' k-th
    smallest bounds their median from below (and the k-th largest from above) at `confidence`; None when n pairs
    are too few for any bound."""
    alpha, k, tail = 1.0 - confidence, 0, 0.0
    while k < n:
        tail += math.comb(n, k) / 2.0**n  # P(B <= k)
        if tail > alpha:
            break
        k += 1
    return k or None


MAD_TO_SD = 1.4826  # a normal distribution's standard deviation per median absolute deviation
MEDIAN_SE = 1.2533  # the median's standard error per sigma/sqrt(n), for normal noise (sqrt(pi/2))


def paired_gate(
    metric: str,
    reference: Sequence[float | None],
    candidate: Sequence[float | None],
    policy: GatePolicy = GatePolicy(),
    sign: int | None = None,
) -> Verdict:
    """An A/B verdict from pairs measured in turn: `reference[i]` and `candidate[i]` belong together."""
    sign = sign if sign is not None else direction(metric)
    pairs = [
        (float(r), float(c))
        for r, c in zip(reference, candidate, strict=False)
        if r is not None and c is not None and math.isfinite(float(r)) and math.isfinite(float(c)) and r != 0
    ]
    n = len(pairs)
    mr = statistics.fmean(r for r, _ in pairs) if pairs else None
    mc = statistics.fmean(c for _, c in pairs) if pairs else None

    def result(outcome: Outcome, message: str, *bounds: float | None) -> Verdict:
        change, low, high, res = (*bounds, None, None, None, None)[:4]
        return Verdict(metric, outcome, message, change, low, high, mr, mc, n, n, res)

    if sign is None:
        return result("inconclusive", f"{metric}: no known direction (not gated)")
    k = sign_test_rank(n, policy.confidence)
    if k is None:
        needed = next((m for m in range(n + 1, 1000) if sign_test_rank(m, policy.confidence)), 1000)
        text = f"{metric}: {n} complete pair(s); bounds at {policy.confidence:.0%} need at least {needed}"
        return result("inconclusive", text)
    diffs = sorted(sign * (c - r) / abs(r) for r, c in pairs)
    change = statistics.median(diffs)
    low, high = diffs[k - 1], diffs[n - k]
    spread = MAD_TO_SD * statistics.median(abs(d - change) for d in diffs)
    se = MEDIAN_SE * spread / math.sqrt(n)
    res = _resolution(max(change - low, high - change), se, policy)
    numbers = (
        f"median {change:+.2%} ({low:+.2%} .. {high:+.2%} at {policy.confidence:.0%}; {n} pairs; resolution {res:.1%})"
    )
    outcome, text = _judge(metric, change, low, high, res, policy, numbers, "pairs")
    return result(outcome, text, change, low, high, res)
