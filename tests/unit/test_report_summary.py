"""How gate verdicts count in a suite's verdict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.report.rundata import RunData
from harness.report.summary import (
    TEST_NOT_SHOWN,
    UNENFORCED_FAIL,
    SuiteSummary,
    check_outcomes,
    gate_outcome,
    key_numbers,
    not_run,
    overall_verdict,
    summarise,
)


def test_a_planted_fault_caught_is_not_a_failure_of_the_run() -> None:
    caught = {"outcome": "fail", "enforced": True, "expect": "fail"}
    missed = {"outcome": "inconclusive", "enforced": True, "expect": "fail"}
    aa = {"outcome": "pass", "enforced": True, "expect": "pass"}
    assert gate_outcome(caught) == "fail (as expected)"
    assert gate_outcome(missed) == "fail", "a slowdown the gate did not catch fails the run"
    assert gate_outcome(aa) == "pass (as expected)"
    summary = SuiteSummary("serving.ab")
    summary.tests["passed"] = 2
    summary.gates.update(gate_outcome(g) for g in (caught, aa))
    assert summary.verdict == "PASS"
    summary.gates.update([gate_outcome(missed)])
    assert summary.verdict == "FAIL"


def test_unexpected_verdicts_count_as_before() -> None:
    assert gate_outcome({"outcome": "fail", "enforced": False}) == UNENFORCED_FAIL
    assert gate_outcome({"outcome": "fail"}) == "fail"
    assert gate_outcome({"outcome": "inconclusive", "enforced": True}) == "inconclusive"


def _suite(tests: dict[str, int], gates: tuple[str, ...] = (), checks: tuple[str, ...] = ()) -> SuiteSummary:
    summary = SuiteSummary("s")
    summary.tests.update(tests)
    summary.gates.update(gates)
    summary.checks.update(checks)
    return summary


def test_nothing_shown_rolls_up_into_pass() -> None:
    """An xfail, a not_shown check, an inconclusive gate: each keeps the suite and the run from PASS."""
    assert _suite({"passed": 3}).verdict == "PASS"
    assert _suite({"passed": 3, "skipped": 1}).verdict == "PASS", "a test that did not apply is counted, not passed"
    assert _suite({"passed": 1, "xfailed": 1}).verdict == "NOT SHOWN"
    assert _suite({"passed": 3, TEST_NOT_SHOWN: 1}).verdict == "NOT SHOWN", "asked for, not shown: never a skip"
    assert _suite({"passed": 2}, checks=("pass", "not_shown")).verdict == "NOT SHOWN"
    assert _suite({"passed": 2}, gates=("not_shown",)).verdict == "NOT SHOWN"
    assert _suite({"passed": 2}, gates=("inconclusive",)).verdict == "INCONCLUSIVE"
    assert _suite({"passed": 2}, checks=("inconclusive",)).verdict == "INCONCLUSIVE"
    assert _suite({"passed": 2}, checks=("fail",)).verdict == "FAIL", "a failed check fails though its test passed"
    assert _suite({"passed": 1, "xfailed": 1}, gates=(UNENFORCED_FAIL,)).verdict == "WARN"
    assert _suite({"skipped": 2}).verdict == "SKIPPED"
    assert _suite({"xpassed": 1}).verdict == "PASS"


def test_the_runs_verdict_is_its_worst_suites() -> None:
    passing, unshown, undecided = (
        _suite({"passed": 1}),
        _suite({"xfailed": 1}),
        _suite({"passed": 1}, ("inconclusive",)),
    )
    assert overall_verdict([passing]) == "PASS"
    assert overall_verdict([passing, undecided]) == "INCONCLUSIVE"
    assert overall_verdict([passing, undecided, unshown]) == "NOT SHOWN"
    assert overall_verdict([passing, unshown, _suite({"failed": 1})]) == "FAIL"
    assert overall_verdict([_suite({"skipped": 1})]) == "NOT RUN"
    assert overall_verdict([passing], incomplete="interrupted by SIGINT") == "INCOMPLETE"
    assert overall_verdict([_suite({"failed": 1})], incomplete="interrupted") == "FAIL"


def test_verdicts_among_a_cases_checks_are_counted() -> None:
    document = {
        "checks": {
            "kv_transfer": {"metric": "external_prefix_cache_hits", "outcome": "not_shown"},
            "served_by": ["prefill=a decode=b"],
            "server": {"prefix_cache_hit_rate": 0.5},
        }
    }
    assert check_outcomes(document) == ["not_shown"]


def test_a_test_that_wrote_nothing_counts_under_its_modules_suite(tmp_path: Path) -> None:
    """The diffusers case wrote `diffusion.t2i`; its skipped ComfyUI twin made a second row, diffusion.text_to_image."""
    module = "suites/diffusion/test_text_to_image.py"
    written: dict[str, Any] = {"suite": "diffusion.t2i", "case_id": "c", "metrics": {}, "test": f"{module}::t[cpu]"}
    records: list[dict[str, Any]] = [
        {"nodeid": written["test"], "phase": "call", "outcome": "passed"},
        {"nodeid": f"{module}::test_comfyui[cpu]", "phase": "setup", "outcome": "skipped"},
    ]
    (summary,) = summarise(RunData(tmp_path, {}, records, [written]))
    assert summary.suite == "diffusion.t2i"
    assert dict(summary.tests) == {"passed": 1, "skipped": 1}


def test_a_declared_suite_takes_a_test_that_wrote_nothing(tmp_path: Path) -> None:
    """The skipped ComfyUI case names its suite (the `suite` marker, in its record): no skip beside the t2i PASS."""
    module = "suites/diffusion/test_text_to_image.py"
    written: dict[str, Any] = {"suite": "diffusion.t2i", "case_id": "c", "metrics": {}, "test": f"{module}::t[cpu]"}
    records: list[dict[str, Any]] = [
        {"nodeid": written["test"], "phase": "call", "outcome": "passed"},
        {"nodeid": f"{module}::c[cpu]", "phase": "setup", "outcome": "skipped", "suite": "diffusion.comfyui"},
    ]
    comfyui, t2i = summarise(RunData(tmp_path, {}, records, [written]))
    assert (comfyui.suite, comfyui.verdict, dict(comfyui.tests)) == ("diffusion.comfyui", "SKIPPED", {"skipped": 1})
    assert (t2i.suite, t2i.verdict, dict(t2i.tests)) == ("diffusion.t2i", "PASS", {"passed": 1})


def test_every_test_that_did_not_run_is_listed_with_its_reason() -> None:
    records = [
        {"nodeid": "a", "phase": "call", "outcome": "passed"},
        {"nodeid": "b", "phase": "setup", "outcome": "skipped", "detail": "(...)", "reason": "the plan has no x"},
        {"nodeid": "c", "phase": "call", "outcome": TEST_NOT_SHOWN, "detail": "(...)", "reason": "not shown: no y"},
        {"nodeid": "d", "phase": "call", "outcome": "passed"},
        {"nodeid": "d", "phase": "teardown", "outcome": "skipped", "detail": "(...)", "reason": "gone"},
        {"nodeid": "e", "phase": "call", "outcome": "xfailed", "detail": "known"},
    ]
    assert not_run(records) == [
        ("skipped", "b", "the plan has no x"),
        (TEST_NOT_SHOWN, "c", "not shown: no y"),
        ("skipped", "d", "gone"),
        ("xfailed", "e", "known"),
    ]


def test_a_quantisation_comparison_reads_as_candidate_against_reference() -> None:
    gate = {"metric": "t/acc,none", "outcome": "pass", "candidate_mean": 0.25, "baseline_mean": 0.26}
    line = key_numbers("accuracy.quant", [{"case_id": "quantization=fp8", "metrics": {}, "gates": [gate]}])
    assert line == "candidate quantization=fp8: t/acc,none 0.250 vs reference 0.260"
