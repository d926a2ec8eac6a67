"""The pytest plugin from the outside: options, markers, platform skips and up-front plan errors."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from harness.platform.devices import cpu_facts

REPO = Path(__file__).resolve().parents[2]

SUITE = """
import pytest

def test_needs_a_platform(target_platform):
    assert target_platform == "cpu"

def test_plain():
    pass
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A project folder with the default plan where the plugin looks for it."""
    (pytester.path / "fixtures" / "plans").mkdir(parents=True)
    shutil.copy(REPO / "fixtures/plans/cpu-tiny.yaml", pytester.path / "fixtures/plans/cpu-tiny.yaml")
    shutil.copytree(REPO / "fixtures/baselines", pytester.path / "fixtures/baselines")  # files the plan names
    pytester.makepyfile(test_suite=SUITE)
    return pytester


def test_help_lists_the_options(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--help")
    for option in ("--plan", "--endpoint", "--api-key", "--served-model-name", "--reports-dir", "--max-live-servers"):
        result.stdout.fnmatch_lines([f"*{option}*"])


def test_markers_are_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--markers")
    for marker in ("npu", "gpu", "cpu", "smoke", "serving", "accuracy", "training", "preflight"):
        result.stdout.fnmatch_lines([f"@pytest.mark.{marker}:*"])


def test_npu_variants_skip_with_the_reason_and_exit_zero(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess("-m", "npu", "-rs")
    result.assert_outcomes(skipped=1, deselected=3)
    result.stdout.fnmatch_lines(["*no Ascend NPU: npu-smi not found, torch_npu not importable*"])
    assert result.ret == 0


def test_a_run_that_ran_nothing_leaves_latest_at_the_last_run_that_did(project: pytest.Pytester) -> None:
    """`pytest -m npu` on a CPU machine skips everything; reports/latest kept pointing at it ("Overall: NOT RUN")."""
    assert project.runpytest_subprocess("-m", "cpu", "--reports-dir", "out").ret == 0
    ran = (project.path / "out" / "latest").resolve()
    skipped = project.runpytest_subprocess("-m", "npu", "--reports-dir", "out")
    skipped.stdout.fnmatch_lines([f"this run ran no test: reports/latest still points at {ran.name}"])
    assert (project.path / "out" / "latest").resolve() == ran
    assert len([p for p in (project.path / "out").iterdir() if p.is_dir() and not p.is_symlink()]) == 2, "both kept"


def test_each_platform_is_a_marked_variant(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess("--collect-only", "-q")
    result.stdout.fnmatch_lines(
        ["*test_needs_a_platform[[]npu[]]", "*test_needs_a_platform[[]gpu[]]", "*test_needs_a_platform[[]cpu[]]"]
    )


def test_a_plan_for_another_platform_skips_the_cpu_variant(project: pytest.Pytester) -> None:
    (project.path / "model").mkdir()
    (project.path / "model" / "config.json").write_text("{}")
    plan = project.path / "gpu.yaml"
    plan.write_text("name: g\nplatform: gpu\nmodel: {path: model}\n")
    result = project.runpytest_subprocess("-m", "cpu", "-rs", "--plan", str(plan))
    result.assert_outcomes(skipped=1, deselected=3)
    result.stdout.fnmatch_lines(["*the plan *gpu.yaml targets gpu, not cpu*"])


def test_a_plan_whose_model_is_missing_is_refused(project: pytest.Pytester) -> None:
    plan = project.path / "mine.yaml"
    plan.write_text("name: mine\nplatform: cpu\nmodel: {path: /nowhere/model}\n")
    result = project.runpytest_subprocess("-m", "cpu", "-rs", "--plan", str(plan))
    # A plan for a platform this machine runs, whose model path does not exist: refused before any test.
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*mine.yaml: model.path: no model directory*"])


def test_a_plan_for_a_platform_absent_here_skips_with_that_reason(project: pytest.Pytester) -> None:
    """The GPU plan's model path does not exist here either; what matters first is that there is no GPU."""
    result = project.runpytest_subprocess(
        "-m", "gpu", "-rs", "--plan", str(REPO / "fixtures/plans/gpu-llama3.1-8b.yaml")
    )
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*no NVIDIA GPU*"])


def test_a_bad_plan_stops_the_run_before_collection(project: pytest.Pytester) -> None:
    bad = project.path / "bad.yaml"
    bad.write_text((REPO / "fixtures/plans/cpu-tiny.yaml").read_text().replace("max-num-seqs", "max-num-seq"))
    result = project.runpytest_subprocess("--plan", str(bad))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*bad.yaml: server.max-num-seq: unknown key*did you mean 'max-num-seqs'*"])


def test_run_folder_records_outcomes_as_they_happen(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess("-m", "npu or not (npu or gpu or cpu)", "--reports-dir", "out")
    result.assert_outcomes(passed=1, skipped=1)
    run = project.path / "out" / "latest"
    lines = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    assert {(entry["nodeid"].split("::")[1], entry["outcome"]) for entry in lines} == {
        ("test_plain", "passed"),
        ("test_needs_a_platform[npu]", "skipped"),
    }
    summary = json.loads((run / "run.json").read_text())
    assert summary["outcomes"] == {"passed": 1, "skipped": 1}
    assert summary["environment"]["harness_version"]
    assert (run / "junit.xml").is_file()


def lf_log(path: Path, losses: list[float]) -> Path:
    rows = [
        {
            "current_steps": 10 * (i + 1),
            "loss": loss,
            "total_tokens": 20480 * (i + 1),
            "elapsed_time": f"0:00:{2 * i:02d}",
        }
        for i, loss in enumerate(losses)
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def training_run(project: pytest.Pytester, log: Path, *extra: str) -> pytest.RunResult:
    shutil.copytree(REPO / "suites", project.path / "suites")
    return project.runpytest_subprocess(
        "suites/training",
        "-m",
        "cpu",
        "--training-log",
        str(log),
        "-k",
        "converges or throughput or reference",
        "--reports-dir",
        "out",
        *extra,
    )


def test_a_training_log_made_elsewhere_is_qualified(project: pytest.Pytester) -> None:
    """--training-log: the checks and throughput run on the log; no training, no server. The CPU plan's reference
    is another run, so the alignment fails and says by how much."""
    good = lf_log(project.path / "trainer_log.jsonl", [4.0 - 0.055 * i for i in range(60)])
    result = training_run(project, good)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*the loss curve departs from*mean relative error*"])
    document = json.loads((project.path / "out/latest/training/throughput/log.json").read_text())
    assert document["metrics"]["tokens_per_s_per_card"] == pytest.approx(2048 / 0.2 / 1), (
        "20480 tokens per 10 steps in 2 s"
    )


def test_a_diverging_training_log_fails_with_the_reason(project: pytest.Pytester) -> None:
    bad = lf_log(project.path / "trainer_log.jsonl", [2.0 + 0.05 * i for i in range(60)])
    result = training_run(project, bad)
    result.stdout.fnmatch_lines(["*decreasing: loss rose from a median of*"])


def test_an_unreadable_training_log_stops_the_run_up_front(project: pytest.Pytester) -> None:
    (project.path / "notes.txt").write_text("nothing here\n")
    result = training_run(project, project.path / "notes.txt")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--training-log*notes.txt: cannot tell the log format*"])


GATED = """
from harness.results.case import CaseResult

def test_measured(record_case):
    record_case(CaseResult("serving.static", "x", {}, {"output_throughput": 51.0},
                           repeats=[{"output_throughput": 50.0}, {"output_throughput": 51.0}]))
"""


LATE_VERDICT = """
from harness.results.case import CaseResult

def test_checked_after_writing(record_case):
    result = CaseResult("serving.prefix", "p", {}, {"output_throughput": 51.0})
    record_case(result)
    result.checks["prefix_cache"] = {"outcome": "pass"}

def test_checked_then_written(record_case):
    result = CaseResult("serving.prefix", "q", {}, {"output_throughput": 51.0})
    result.checks["prefix_cache"] = {"outcome": "pass"}
    record_case(result)
"""


def test_a_verdict_set_after_its_case_was_written_fails_the_test(project: pytest.Pytester) -> None:
    """The planted fault of the prefix suite: a check set after record_case never reaches the case file."""
    project.makepyfile(test_late=LATE_VERDICT)
    result = project.runpytest_subprocess("test_late.py", "-m", "cpu", "--reports-dir", "out")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        ["*a verdict was set after its case was written*", "*serving.prefix p: checks.prefix_cache"]
    )
    late = json.loads((project.path / "out/latest/serving/prefix/p.json").read_text())
    assert "prefix_cache" not in late["checks"], "what the guard is for: the file lacks the late verdict"
    on_time = json.loads((project.path / "out/latest/serving/prefix/q.json").read_text())
    assert on_time["checks"]["prefix_cache"] == {"outcome": "pass"}


UNDECIDED_RUN = """
import pytest
from harness.results.case import CaseResult

def test_undecided_comparison(record_case):
    gate = {"metric": "output_throughput", "outcome": "inconclusive", "message": "resolution 40% > 30%"}
    record_case(CaseResult("serving.ab", "flags", {}, {}, gates=[gate]))

def test_expected_failure(record_case):  # a platform fixture: the test runs under -m cpu
    pytest.xfail("the platform's one known symptom")

def test_asked_for_but_not_shown(record_case, request):
    from harness.plugins.markers import not_shown
    not_shown(request, "the server exports no counters")
"""


@pytest.mark.parametrize(
    ("selected", "verdict"),
    [
        ("test_undecided_comparison", "INCONCLUSIVE"),
        ("test_expected_failure", "NOT SHOWN"),
        ("test_asked_for_but_not_shown", "NOT SHOWN"),
    ],
)
def test_a_run_nothing_failed_in_but_not_everything_was_shown_is_not_green(
    project: pytest.Pytester, selected: str, verdict: str
) -> None:
    """An A/B comparison without `expect` that could not decide, an xfail, or a test the plan asks for whose check
    cannot be shown here passes no test and fails none: the run's verdict says what it is, and its exit status is 6,
    not 0. pytest itself reports the last as a skip; the run does not."""
    suite = project.path / "suites" / "serving" / "test_undecided.py"  # a suite's module names its suite
    suite.parent.mkdir(parents=True)
    suite.write_text(UNDECIDED_RUN)
    result = project.runpytest_subprocess(f"{suite}::{selected}", "-m", "cpu", "--reports-dir", "out")
    assert result.ret == 6
    result.stdout.fnmatch_lines([f"overall: {verdict} (exit 6: no test failed, but not everything was shown)"])
    summary = json.loads((project.path / "out" / "latest" / "run.json").read_text())
    assert (summary["status"], summary["verdict"]) == ("passed", verdict), "the tests passed; the run showed less"
    reasons = {"test_expected_failure": "the platform's one known symptom", "test_asked_for_but_not_shown":
               "not shown: the server exports no counters"}  # fmt: skip
    listed = (project.path / "out" / "latest" / "report.html").read_text().split("<h2>Tests not run</h2>")[1]
    if selected in reasons:  # listed with its reason alone, not a traceback
        assert f">{reasons[selected].replace(chr(39), '&#x27;')}</td>" in listed.split("<h2>")[0]


TWO_SUITES_IN_ONE_MODULE = """
import pytest
from harness.results.case import CaseResult

def test_made_here(record_case):
    record_case(CaseResult("diffusion.t2i", "64x64", {}, {"images_per_s": 10.0}))

@pytest.mark.suite("diffusion.comfyui")
def test_on_a_server(record_case):
    pytest.skip("no ComfyUI server to measure: pass --comfyui-url URL")
"""


def test_a_skipped_test_counts_under_its_own_suite_and_is_listed_with_its_reason(project: pytest.Pytester) -> None:
    """A module writing two suites: the skipped ComfyUI case reads SKIPPED under its own suite; the diffusers one
    PASS with nothing skipped beside it. The report lists the skip with its reason."""
    suite = project.path / "suites" / "diffusion" / "test_text_to_image.py"
    suite.parent.mkdir(parents=True)
    suite.write_text(TWO_SUITES_IN_ONE_MODULE)
    result = project.runpytest_subprocess(str(suite), "-m", "cpu", "--reports-dir", "out")
    assert result.ret == 0
    result.stdout.re_match_lines([r"^SKIPPED +diffusion\.comfyui: 1 skipped$", r"^PASS +diffusion\.t2i: 1 passed;"])
    report = (project.path / "out" / "latest" / "report.html").read_text()
    listed = report.split("<h2>Tests not run</h2>")[1].split("<h2>")[0]
    assert "test_on_a_server" in listed
    assert "no ComfyUI server to measure: pass --comfyui-url URL" in listed
    assert "test_made_here" not in listed


NEEDS_A_SERVER = """
import pytest

@pytest.mark.parametrize("n", range(4))
def test_served(endpoint, n):
    pass
"""


def test_an_unreachable_endpoint_is_one_error_and_nothing_else_starts(project: pytest.Pytester) -> None:
    """It gave one error per test that needed the server (12 in the main job), some for tests that would skip."""
    project.makepyfile(test_served=NEEDS_A_SERVER)
    result = project.runpytest_subprocess(
        "test_served.py", "-m", "cpu", "--endpoint", "http://127.0.0.1:9", "--reports-dir", "out"
    )
    result.assert_outcomes(errors=1)  # in the fixture: a setup error, once
    result.stdout.fnmatch_lines(["*Interrupted: --endpoint http://127.0.0.1:9 does not serve*(the remaining tests*"])


@pytest.mark.parametrize("enforce", [True, False])
def test_a_gate_fails_the_test_only_when_enforced_and_after_writing(project: pytest.Pytester, enforce: bool) -> None:
    plan = project.path / "fixtures/plans/cpu-tiny.yaml"
    baseline = {
        "schema": "llmqual.baseline/1",
        "plan": "cpu-tiny",
        "platform": "cpu",
        "device": cpu_facts()["device"],  # recorded on this machine: a verdict is given
        "cases": {"serving.static/x": {"output_throughput": [100.0, 101.0, 99.0, 100.0]}},
    }
    (project.path / "fixtures/plans/baseline.yaml").write_text(json.dumps(baseline))
    text = plan.read_text().replace("enforce: false", f"enforce: {str(enforce).lower()}\n  baseline: baseline.yaml")
    # hardware whose runs agree: the CPU plan's run-to-run drift would make a 50% change inconclusive
    plan.write_text(re.sub(r"between-runs: [0-9.]+", "between-runs: 0.0", text))
    project.makepyfile(test_gated=GATED)
    result = project.runpytest_subprocess("test_gated.py", "-m", "cpu", "--reports-dir", "out")
    result.assert_outcomes(failed=int(enforce), passed=int(not enforce))
    written = json.loads((project.path / "out/latest/serving/static/x.json").read_text())
    assert [g["outcome"] for g in written["gates"]] == ["fail"], "written, with its verdict, either way"
    if enforce:
        result.stdout.fnmatch_lines(["regression against the baseline:", "output_throughput: worse by -49.50%*"])
    result.stdout.fnmatch_lines(
        [
            "WARN *serving.static: 1 passed; gates 1 fail (not enforced)*"
            if not enforce
            else "FAIL *serving.static: 1 failed; gates 1 fail*"
        ]
    )
    junit = (project.path / "out/latest/junit.xml").read_text()
    assert 'name="gate x output_throughput" value="fail"' in junit


def test_a_baseline_from_another_device_is_named_up_front_and_gives_no_verdict(project: pytest.Pytester) -> None:
    plan = project.path / "fixtures/plans/cpu-tiny.yaml"
    baseline = {
        "schema": "llmqual.baseline/1",
        "plan": "cpu-tiny",
        "platform": "cpu",
        "device": "Some Other CPU [6/85/7, avx2]",
        "cases": {"serving.static/x": {"output_throughput": [100.0, 101.0, 99.0, 100.0]}},
    }
    (project.path / "fixtures/plans/baseline.yaml").write_text(json.dumps(baseline))
    text = plan.read_text().replace("enforce: false", "enforce: true\n  baseline: baseline.yaml")
    plan.write_text(text)
    project.makepyfile(test_gated=GATED)
    result = project.runpytest_subprocess("test_gated.py", "-m", "cpu", "--reports-dir", "out")
    result.assert_outcomes(passed=1, warnings=1)  # enforced, yet a halved throughput cannot fail against it
    result.stdout.fnmatch_lines(["*gates.baseline*baseline.yaml: the baseline was recorded on another device*"])
    written = json.loads((project.path / "out/latest/serving/static/x.json").read_text())
    (verdict,) = written["gates"]
    assert verdict["outcome"] == "inconclusive"
    assert "Some Other CPU [6/85/7, avx2]" in verdict["message"]
    assert "llmqual baseline update" in verdict["message"]


def test_an_unwritable_reports_folder_is_a_usage_error_naming_it(project: pytest.Pytester) -> None:
    (project.path / "occupied").write_text("a file where the reports folder should be")
    result = project.runpytest_subprocess("-m", "not cpu", "--reports-dir", "occupied/reports")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*cannot write the run folder *occupied/reports/*; make *writable or pass another*"])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


SPOILT_RUN = """
import os
import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def server_like():
    yield
    Path("torn-down").write_text("the session's fixtures were torn down")


def test_spoils_the_run_folder(server_like):
    run = Path("out/latest").resolve()
    (run / "run.json").mkdir()  # planted: the summary cannot be written (as on a full disk)
    os.remove(run / "results.jsonl")
    (run / "results.jsonl").mkdir()  # planted: neither can the next result line


def test_later():
    pass
"""


def test_a_run_folder_that_cannot_be_completed_is_reported_after_the_teardown(project: pytest.Pytester) -> None:
    project.makepyfile(test_suite=SPOILT_RUN)
    result = project.runpytest_subprocess("-m", "not cpu", "--reports-dir", "out", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR, "a run without its report is not a green run"
    output = result.stdout.str()
    assert "INTERNALERROR" not in output + result.stderr.str()
    result.stdout.fnmatch_lines(["*the run folder could not be completed: *results.jsonl: Is a directory*"])
    result.stdout.fnmatch_lines(["*the run folder could not be completed: IsADirectoryError*run.json*"])
    assert (project.path / "torn-down").is_file()
