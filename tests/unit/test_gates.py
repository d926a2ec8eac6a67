"""Gates on planted signals: unchanged noise, planted regressions and improvements, missing data.

The simulation states the targets of DESIGN.md §7 at the default settings (GatePolicy(), DEFAULT_REPEATS repeats
against DEFAULT_BASELINE_SAMPLES recorded runs) for a run-to-run spread of 2%.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.gates.directions import direction
from harness.gates.gate import GatePolicy, gate, overall
from harness.gates.policy import DEFAULT_BASELINE_SAMPLES, DEFAULT_REPEATS


@pytest.mark.parametrize(
    ("metric", "sign"),
    [
        ("output_throughput", 1),
        ("request_throughput", 1),
        ("mean_ttft_ms", -1),
        ("p99_tpot_ms", -1),
        ("tokens_per_s_per_card", 1),
        ("samples_per_s", 1),
        ("final_loss", -1),
        ("exact_match,strict-match", 1),
        ("acc_norm,none", 1),
        ("completed", None),
    ],
)
def test_directions(metric: str, sign: int | None) -> None:
    assert direction(metric) == sign


def simulate(shift: float, cv: float, trials: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    counts = {"pass": 0, "fail": 0, "inconclusive": 0}
    for _ in range(trials):
        baseline = 1000.0 * (1 + cv * rng.standard_normal(DEFAULT_BASELINE_SAMPLES))
        run = 1000.0 * (1 - shift) * (1 + cv * rng.standard_normal(DEFAULT_REPEATS))
        counts[gate("output_throughput", baseline.tolist(), run.tolist()).outcome] += 1
    return {k: v / trials for k, v in counts.items()}


def test_simulation_false_fails_and_detection_at_the_defaults() -> None:
    unchanged = simulate(0.0, cv=0.02, trials=4000, seed=11)
    regressed = simulate(0.05, cv=0.02, trials=4000, seed=12)
    print(f"\nunchanged noise (cv 2%): {unchanged}\nplanted 5% regression: {regressed}")
    assert unchanged["fail"] <= 0.01, unchanged
    assert regressed["fail"] >= 0.95, regressed
    assert regressed["pass"] <= 0.01, "a real 5% regression is almost never called a pass"


def test_lower_is_better_metrics_fail_when_they_rise() -> None:
    baseline = [100.0, 101.0, 99.0, 100.5, 99.5]
    slower = gate("mean_ttft_ms", baseline, [110.0, 111.0, 109.0])
    faster = gate("mean_ttft_ms", baseline, [90.0, 91.0, 89.0])
    assert slower.outcome == "fail"
    assert slower.change == pytest.approx(-0.10)
    assert "worse by -10.00%" in slower.message
    assert faster.outcome == "pass", "an improvement is never a failure"


def test_noise_wider_than_the_change_is_inconclusive() -> None:
    result = gate("output_throughput", [900.0, 1100.0, 1000.0, 950.0, 1050.0], [940.0, 1010.0])
    assert result.outcome == "inconclusive"
    assert "add repeats" in result.message


def test_missing_data_and_unknown_spread_are_inconclusive_never_pass() -> None:
    assert gate("output_throughput", [], [1.0]).outcome == "inconclusive"
    assert gate("output_throughput", [1.0], [None]).outcome == "inconclusive"
    single = gate("output_throughput", [1000.0], [800.0])
    assert single.outcome == "inconclusive"
    assert "no spread is known" in single.message
    assert gate("completed", [1.0, 2.0], [1.0, 2.0]).outcome == "inconclusive", "no direction: not gated"


def test_one_sided_spread_stands_for_both() -> None:
    """One repeat against a baseline recorded from several runs: the baseline's spread is the noise."""
    result = gate("output_throughput", [1000.0, 1010.0, 990.0, 1005.0, 995.0], [700.0])
    assert result.outcome == "fail"
    assert result.n_candidate == 1


def test_identical_deterministic_values_pass() -> None:
    assert gate("exact_match,none", [0.33, 0.33], [0.33, 0.33]).outcome == "pass"


def test_policy_thresholds_are_used() -> None:
    baseline, run = [1000.0, 1001.0, 999.0], [970.0, 971.0, 969.0]
    assert gate("output_throughput", baseline, run, GatePolicy(tolerance=0.02)).outcome == "fail"
    assert gate("output_throughput", baseline, run, GatePolicy(tolerance=0.05, detect=0.05)).outcome == "pass"


def test_overall_outcome() -> None:
    results = [gate("output_throughput", [1.0, 1.01], [1.0, 1.01]), gate("output_throughput", [1.0], [0.5])]
    assert overall(results) == "inconclusive"
    assert overall([]) is None


samples = st.lists(st.floats(min_value=1.0, max_value=1e4, allow_nan=False), min_size=2, max_size=12)


@given(baseline=samples, run=samples, scale=st.floats(min_value=1e-3, max_value=1e3))
def test_verdicts_do_not_depend_on_units(baseline: list[float], run: list[float], scale: float) -> None:
    """Relative changes: tokens/s or tokens/ms, the verdict is the same."""
    plain = gate("output_throughput", baseline, run)
    scaled = gate("output_throughput", [v * scale for v in baseline], [v * scale for v in run])
    assert plain.outcome == scaled.outcome
    assert plain.change == pytest.approx(scaled.change, abs=1e-9)


@given(baseline=samples, run=samples)
def test_an_improvement_never_fails(baseline: list[float], run: list[float]) -> None:
    better = [max(baseline) * 1.5 + v for v in run]  # every run value above every baseline value
    assert gate("output_throughput", baseline, better).outcome != "fail"
    assert gate("mean_ttft_ms", [v + max(run) * 2 for v in baseline], run).outcome != "fail"
