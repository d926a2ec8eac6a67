"""The drift a gate allows for, measured from a plan's past runs on this host (harness/gates/drift.py), and
`llmqual compare` using it: a planted 20% regression the plan's constant drift leaves undecided is failed once
this host's runs show it drifts by about 1%."""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.gates.drift import MIN_RUNS, measured_drift
from harness.results.index import RunIndex, drifts_of
from tests.unit.test_results_store import REPO, static_doc, write_run


def test_the_drift_is_the_median_spread_with_its_upper_bound() -> None:
    rng = np.random.default_rng(7)
    per_case = {f"c{i}": list(100 * (1 + 0.02 * rng.standard_normal(10))) for i in range(5)}
    drift = measured_drift("output_throughput", per_case)
    assert drift is not None
    spreads = [statistics.stdev(v) / statistics.fmean(v) for v in per_case.values()]
    assert drift.estimate == pytest.approx(statistics.median(spreads))
    assert drift.bound == pytest.approx(1.469 * drift.estimate, rel=0.01), "10 runs: the 90% bound is 1.47x"
    assert (drift.runs, drift.cases) == (10, 5)
    assert "over 10 runs on this host" in drift.describe()


def test_too_few_runs_measure_nothing() -> None:
    assert measured_drift("m", {"c": [100.0, 101.0, 99.0, 100.0]}) is None, f"fewer than {MIN_RUNS} runs"
    assert measured_drift("m", {}) is None


def test_compare_uses_this_hosts_measured_drift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reports, plan = tmp_path / "reports", REPO / "fixtures/plans/cpu-tiny.yaml"
    index = RunIndex(reports)
    for n, value in enumerate([100.0, 101.0, 99.5, 100.5, 99.0, 100.2]):  # six unchanged runs: about 0.7%
        index.start_run(f"past{n}", reports / f"past{n}", "cpu-tiny", "cpu")
        index.record_case(f"past{n}", static_doc("p4", [value]), reports / "x.json", None)
        index.finish_run(f"past{n}", "passed", {}, "cpu-tiny", "cpu")
    drifts = drifts_of(index, "cpu-tiny", ["output_throughput"])
    assert drifts["output_throughput"].runs == 6
    write_run(reports, "a", [static_doc("p4", [100.0, 101.0, 99.0, 100.5])], plan)
    write_run(reports, "b", [static_doc("p4", [80.0, 81.0, 79.0, 80.5])], plan)
    assert main(["compare", "a", "b", "--reports", str(reports)]) == 1, "decided with the measured drift"
    out = capsys.readouterr().out
    assert "output_throughput: drift " in out
    assert "instead of the plan's 20%" in out
    assert main(["compare", "a", "b", "--reports", str(reports), "--plan-drift"]) == 0, "the constant: undecided"
    out = capsys.readouterr().out
    assert "INCONCLUSIVE" in out
    assert "instead of the plan's" not in out
