"""The run index (SQLite), run baselines (update, judge, files) and the compare / baseline / report commands."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.cli import main
from harness.errors import HarnessError
from harness.gates.gate import GatePolicy
from harness.results.baseline import RunBaseline, judge, load_baseline, save_baseline, update
from harness.results.case import CaseResult, metric_samples, read_case, write_json
from harness.results.index import RunIndex

REPO = Path(__file__).resolve().parents[2]


def static_doc(case_id: str, throughputs: list[float], valid: bool = True) -> dict[str, Any]:
    result = CaseResult(
        suite="serving.static",
        case_id=case_id,
        config={"parallel": 4, "prompt_tokens": 64, "output_tokens": 32},
        metrics={"output_throughput": throughputs[-1], "median_ttft_ms": 10.0, "mean_tpot_ms": 2.0, "completed": 8},
        repeats=[{"output_throughput": t, "median_ttft_ms": 10.0, "mean_tpot_ms": 2.0} for t in throughputs],
        invalid_reasons=[] if valid else ["client fell behind"],
    )
    return result.document({"platform": "cpu", "device": "test cpu"})


def write_run(reports: Path, run_id: str, documents: list[dict[str, Any]], plan: Path, **summary_facts: Any) -> Path:
    run = reports / run_id
    for document in documents:
        write_json(run / "serving" / "static" / f"{document['case_id']}.json", document)
    (run / "results.jsonl").write_text(
        "".join(
            json.dumps(
                {
                    "nodeid": f"suites/serving/test_static.py::test_static[{d['case_id']}]",
                    "phase": "call",
                    "outcome": "passed",
                }
            )
            + "\n"
            for d in documents
        )
    )
    summary = {
        "run_id": run_id,
        "plans": {"cpu": str(plan)},
        "plan_names": {"cpu": "cpu-tiny"},
        "environment": {"platform": "cpu", "device": "test cpu"},
    } | summary_facts
    (run / "run.json").write_text(json.dumps(summary))
    return run


def test_index_keeps_runs_and_trends_across_interruptions(tmp_path: Path) -> None:
    index = RunIndex(tmp_path)
    for n, throughput in enumerate([100.0, 110.0, 120.0]):
        run_id = f"run{n}"
        index.start_run(run_id, tmp_path / run_id, "cpu-tiny", "cpu")
        index.record_case(run_id, static_doc("p4", [throughput]), tmp_path / "x.json", "pass")
        if n < 2:  # the last run is interrupted: its case is kept, its status stays "running"
            index.finish_run(run_id, "passed", {"host": "h"}, None, None)
    trend = index.trend("serving.static", "p4", "output_throughput", "cpu-tiny", last=2)
    assert [(p.run_id, p.value) for p in trend] == [("run1", 110.0), ("run2", 120.0)]
    runs = index.runs("cpu-tiny")
    assert [r["status"] for r in runs] == ["running", "passed", "passed"]
    with sqlite3.connect(index.path) as db:
        assert db.execute("SELECT COUNT(*) FROM cases").fetchone() == (3,)


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_killed_run_is_reconciled_when_the_index_is_next_opened(tmp_path: Path) -> None:
    """`kill -9` of pytest: the run never writes its end, and a case may be on disk but not yet in the index."""
    index = RunIndex(tmp_path)
    run_dir = write_run(tmp_path, "killed", [static_doc("p4", [100.0]), static_doc("p16", [300.0])], REPO / "x.yaml")
    index.start_run("killed", run_dir, "cpu-tiny", "cpu", pid=dead_pid())
    index.record_case("killed", static_doc("p4", [100.0]), run_dir / "p4.json", None)  # p16 never reached it
    index.start_run("alive", tmp_path / "alive", "cpu-tiny", "cpu")  # this process: still running
    assert index.reconcile() == []  # start_run already reconciled the killed run
    runs = {r["run_id"]: r for r in index.runs()}
    assert runs["killed"]["status"] == "interrupted"
    assert runs["killed"]["finished"] == pytest.approx(max(f.stat().st_mtime for f in run_dir.rglob("*.json")))
    assert runs["alive"]["status"] == "running"
    with sqlite3.connect(index.path) as db:
        cases = db.execute("SELECT case_id FROM cases WHERE run_id = 'killed' ORDER BY case_id").fetchall()
    assert cases == [("p16",), ("p4",)]


def test_an_index_from_before_the_pid_column_is_migrated(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "index.sqlite") as db:
        db.execute(
            "CREATE TABLE runs (run_id TEXT PRIMARY KEY, plan TEXT, platform TEXT, started REAL, finished REAL, "
            "status TEXT, directory TEXT, environment TEXT)"
        )
        db.execute("INSERT INTO runs (run_id, status) VALUES ('old', 'running')")
    index = RunIndex(tmp_path)
    index.start_run("new", tmp_path / "new", None, "cpu")
    assert {r["run_id"]: r["status"] for r in index.runs()} == {"old": "running", "new": "running"}


def test_baseline_update_keeps_the_newest_samples_and_skips_invalid_cases(tmp_path: Path) -> None:
    baseline = RunBaseline("cpu-tiny", "cpu", "test cpu")
    baseline = update(baseline, "r1", [static_doc("p4", [100.0, 101.0]), static_doc("bad", [1.0], valid=False)], 3)
    baseline = update(baseline, "r2", [static_doc("p4", [102.0, 103.0])], keep=3)
    assert baseline.samples("serving.static/p4", "output_throughput") == [101.0, 102.0, 103.0]
    assert "serving.static/bad" not in baseline.cases
    assert baseline.runs == ["r1", "r2"]
    path = save_baseline(tmp_path / "b.yaml", baseline)
    assert yaml.safe_load(path.read_text())["schema"] == "llmqual.baseline/1"
    assert load_baseline(path) == baseline
    assert load_baseline(tmp_path / "none.yaml") is None


def test_a_malformed_baseline_names_the_file_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "b.yaml"
    path.write_text("schema: something-else\n")
    with pytest.raises(HarnessError, match=r"b.yaml: not a valid run baseline.*llmqual baseline update"):
        load_baseline(path)


def test_judge_gates_only_what_the_baseline_has() -> None:
    baseline = RunBaseline("cpu-tiny", cases={"serving.static/p4": {"output_throughput": [100.0, 101.0, 99.0, 100.0]}})
    verdicts = judge(static_doc("p4", [80.0, 81.0]), baseline, GatePolicy())
    assert [(v.metric, v.outcome) for v in verdicts] == [("output_throughput", "fail")]
    assert judge(static_doc("other", [80.0]), baseline, GatePolicy()) == []
    assert judge(static_doc("p4", [80.0]), None, GatePolicy()) == []


def test_case_documents_are_versioned(tmp_path: Path) -> None:
    document = static_doc("p4", [1.0, 2.0])
    assert document["schema"] == "llmqual.case/3"
    assert metric_samples(document, "output_throughput") == [1.0, 2.0]
    path = write_json(tmp_path / "c.json", {**document, "schema": "llmqual.case/9"})
    with pytest.raises(HarnessError, match=r"schema 'llmqual\.case/9' is not one of"):
        read_case(path)


def test_compare_and_baseline_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reports = tmp_path / "reports"
    plan = REPO / "fixtures/plans/cpu-tiny.yaml"
    write_run(reports, "a", [static_doc("p4", [100.0, 101.0, 99.0, 100.5]), static_doc("p1", [50.0, 51.0])], plan)
    write_run(reports, "b", [static_doc("p4", [80.0, 81.0, 79.0, 80.5]), static_doc("p1", [50.5, 50.0])], plan)
    # The CPU plan's gates count its machines' run-to-run drift (30%): a 20% loss between two runs is not a verdict
    assert main(["compare", "a", "b", "--reports", str(reports)]) == 0
    out = capsys.readouterr().out
    assert "gates: the gates of plan cpu-tiny: tolerance 15%, a pass rules out 30%, confidence 99%, " in out
    assert "run-to-run drift 20%" in out
    assert re.search(r"output_throughput .* -19\.98%  INCONCLUSIVE \(n=4/4, resolution [0-9]{3}\.[0-9]%\)", out), out
    assert "A = a: plan cpu-tiny, model unknown, device test cpu" in out
    assert re.search(r"every verdict is inconclusive: these runs resolve a change of [0-9.]+% .* rule out 30%", out)
    assert "the plan's ab section" in out
    assert main(["compare", "a", "b", "--reports", str(reports), "--between-runs", "0"]) == 1, "on steady hardware"
    out = capsys.readouterr().out
    assert "serving.static/p4" in out
    assert re.search(r"output_throughput .* -19\.98%  FAIL \(n=4/4, resolution [0-9.]+%\)", out), out
    assert main(["compare", "a", "b", "--reports", str(reports), "--tolerance", "0.25", "--detect", "0.3"]) == 0
    assert "with tolerance 0.25, detect 0.3 from the command line" in capsys.readouterr().out
    out_file = tmp_path / "baseline.yaml"
    assert (
        main(["baseline", "update", "a", "--reports", str(reports), "--plan", str(plan), "--out", str(out_file)]) == 0
    )
    recorded = load_baseline(out_file)
    assert recorded is not None
    assert recorded.samples("serving.static/p4", "output_throughput") == [100.0, 101.0, 99.0, 100.5]
    assert main(["report", "b", "--reports", str(reports)]) == 0
    assert (reports / "b" / "report.html").is_file()
    assert "report:" in capsys.readouterr().out
    assert main(["report", "nope", "--reports", str(reports)]) == 2


def model_doc(case_id: str, throughputs: list[float], model: str) -> dict[str, Any]:
    return static_doc(case_id, throughputs) | {"config": {"model": model}}


def test_compare_refuses_runs_of_different_plans_or_models(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reports, plan = tmp_path / "reports", REPO / "fixtures/plans/cpu-tiny.yaml"
    write_run(reports, "a", [model_doc("p4", [100.0, 101.0], "tiny-llama")], plan)
    write_run(reports, "b", [model_doc("p4", [90.0, 91.0], "qwen2.5-7b")], plan)
    write_run(reports, "c", [model_doc("p4", [90.0, 91.0], "tiny-llama")], plan, plan_names={"cpu": "cpu-other"})
    assert main(["compare", "a", "b", "--reports", str(reports)]) == 2
    err = capsys.readouterr().err
    assert "measured different models (tiny-llama vs qwen2.5-7b)" in err
    assert "--allow-different" in err
    assert main(["compare", "a", "c", "--reports", str(reports)]) == 2
    assert "different plans (cpu-tiny vs cpu-other)" in capsys.readouterr().err
    assert main(["compare", "a", "b", "--reports", str(reports), "--allow-different", "--between-runs", "0"]) == 0
    out = capsys.readouterr().out
    assert "B = b: plan cpu-tiny, model qwen2.5-7b, device test cpu" in out
    assert "DIFFERENT MODEL: no verdict across them" in out
    assert "FAIL" not in out


def test_no_baseline_from_an_interrupted_or_invalid_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reports, plan, out = tmp_path / "reports", REPO / "fixtures/plans/cpu-tiny.yaml", tmp_path / "baseline.yaml"
    write_run(reports, "cut", [static_doc("p4", [100.0, 101.0])], plan, exit_status=2)
    write_run(reports, "invalid", [static_doc("p4", [100.0, 101.0], valid=False)], plan, exit_status=0)
    update_args = ["baseline", "update", "--reports", str(reports), "--plan", str(plan), "--out", str(out)]
    assert main([*update_args[:2], "cut", *update_args[2:]]) == 2
    assert "run cut is no baseline: the run was interrupted" in capsys.readouterr().err
    assert main([*update_args[:2], "invalid", *update_args[2:]]) == 2
    assert "no valid gated measurement to record (1 gated cases, 1 invalid" in capsys.readouterr().err
    assert not out.exists(), "nothing written"


def test_a_reused_training_run_is_not_a_new_baseline_sample() -> None:
    """The tiny run is cached: a second qualification run reads the same curve; counting it twice would claim
    zero noise."""
    fresh = CaseResult("training.throughput", "tiny", {"reused_run": False}, {"tokens_per_s_per_card": 16000.0})
    reused = CaseResult("training.throughput", "tiny", {"reused_run": True}, {"tokens_per_s_per_card": 16000.0})
    baseline = update(RunBaseline("cpu-tiny"), "r1", [fresh.document()], keep=10)
    baseline = update(baseline, "r2", [reused.document()], keep=10)
    assert baseline.samples("training.throughput/tiny", "tokens_per_s_per_card") == [16000.0]


def test_a_baseline_from_another_device_gives_no_verdict() -> None:
    baseline = RunBaseline(
        "p", "cpu", "AMD EPYC [25/17/1, avx512]", cases={"serving.static/c": {"output_throughput": [100.0, 101, 99]}}
    )
    document = {"suite": "serving.static", "case_id": "c", "metrics": {"output_throughput": 50.0}, "repeats": []}
    policy = GatePolicy()
    here = judge(document, baseline, policy, "cpu", "AMD EPYC [25/17/1, avx512]")
    assert [v.outcome for v in here] == ["fail"], "on its own device the halved throughput fails"
    elsewhere = judge(document, baseline, policy, "cpu", "Intel(R) Xeon(R) Platinum [6/143/8, amx]")
    assert [v.outcome for v in elsewhere] == ["inconclusive"]
    assert "AMD EPYC [25/17/1, avx512]" in elsewhere[0].message
    assert "Intel(R) Xeon(R) Platinum" in elsewhere[0].message
    assert "llmqual baseline update" in elsewhere[0].message
    other_platform = judge(document, baseline, policy, "npu", "Ascend910B3")
    assert [v.outcome for v in other_platform] == ["inconclusive"]
