"""The pytest plugin from the outside: options, markers, platform skips and up-front plan errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

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
    result = project.runpytest_subprocess(
        "-m", "cpu", "-rs", "--plan", str(REPO / "fixtures/plans/gpu-llama3.1-8b.yaml")
    )
    # The GPU plan's model path does not exist here: the run is refused before any test.
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*gpu-llama3.1-8b.yaml: model.path: no model directory*"])


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
