"""`llmqual trends`: a metric of every case over a plan's last finished runs, from the run index, with each case's
run-to-run spread (what gates.between-runs should be on this machine)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli import main
from harness.report.trends import SPREAD, trend_table
from harness.results.index import RunIndex


def _run(index: RunIndex, run_id: str, status: str, cases: dict[str, float | None], valid: bool = True) -> None:
    index.start_run(run_id, index.path.parent / run_id, "p", "cpu")
    for case, value in cases.items():
        document = {"suite": "serving.static", "case_id": case, "valid": valid, "metrics": {"output_throughput": value}}
        index.record_case(run_id, document, index.path.parent / f"{case}.json", None)
    if status != "running":
        index.finish_run(run_id, status, {}, "p", "cpu")


@pytest.fixture
def index(tmp_path: Path) -> RunIndex:
    runs = RunIndex(tmp_path)
    _run(runs, "r1", "passed", {"a": 100.0, "b": 10.0})
    _run(runs, "r2", "failed", {"a": 110.0, "b": None})  # b not measured: missing, not 0
    _run(runs, "r3", "passed", {"a": 90.0, "b": 999.0}, valid=False)  # invalid: the client measured itself
    _run(runs, "r4", "interrupted", {"a": 5.0})  # cut short: not a run to trend
    return runs


def test_the_table_has_a_column_per_finished_run_and_the_spread_of_valid_values(index: RunIndex) -> None:
    table = trend_table(index.measured("p", "output_throughput", last=10))
    assert list(table.columns) == ["r1", "r2", "runs", SPREAD]  # r3 only invalid values, r4 interrupted
    a, b = table.loc[("serving.static", "a")], table.loc[("serving.static", "b")]
    assert (a["r1"], a["r2"], a["runs"]) == (100.0, 110.0, 2)
    assert a[SPREAD] == pytest.approx(7.0711 / 105.0, rel=1e-4)  # sample SD of 100, 110 over their mean
    assert b["runs"] == 1
    assert b[SPREAD] != b[SPREAD], "one run has no spread (NaN), never 0"


def test_only_the_last_runs_are_read(index: RunIndex) -> None:
    assert {m.run_id for m in index.measured("p", "output_throughput", last=1)} == {"r3"}


def test_the_command_prints_and_writes_the_table_and_names_a_plan_without_runs(
    index: RunIndex, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    reports = str(index.path.parent)
    assert main(["trends", "--plan", "p", "--reports", reports, "--csv", str(tmp_path / "t.csv")]) == 0
    out = capsys.readouterr().out
    assert "output_throughput of plan p over its last 2 finished run(s)" in out
    assert "6.7%" in out
    assert (tmp_path / "t.csv").read_text().splitlines()[0] == "suite,case_id,r1,r2,runs,rel_sd"
    assert main(["trends", "--plan", "other", "--reports", reports]) == 2
    assert "no finished run of plan 'other' measured output_throughput" in capsys.readouterr().err
