"""How gate verdicts count in a suite's verdict."""

from __future__ import annotations

from harness.report.summary import UNENFORCED_FAIL, SuiteSummary, gate_outcome


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
