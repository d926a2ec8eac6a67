"""One verdict and a few key numbers per suite of a run: what the terminal summary prints and the HTML report heads
with. Pure: it reads a RunData.

A suite is the `suite` of the case documents a test wrote (serving.static, accuracy.lm_eval, training.alignment,
...), or the test's module for tests that write none (smoke, preflight). It counts three things: its tests'
outcomes (passed, failed, xfailed, skipped), its gates (regression verdicts) and its checks (the verdicts a suite
writes into a case's `checks`: prefix cache, KV transfer, training checks). Its verdict, first rule that holds:

  FAIL         a test failed, or a gate or check failed
  WARN         a gate the plan does not enforce failed
  NOT SHOWN    a test was an expected failure (xfail), a test the plan asks for could not show its check here
               (outcome `not shown`), or a gate or check could not show what it checks here
  INCONCLUSIVE a gate or check measured but could not decide
  PASS         tests passed (skipped ones beside them are ones the plan does not ask for: counted and listed with
               their reasons, never passed)
  SKIPPED      every test skipped: the plan does not ask for this suite
The run's overall verdict is the first of FAIL, WARN, NOT SHOWN, INCONCLUSIVE, PASS that any suite has
(`overall_verdict`); a run that did not finish is INCOMPLETE unless it already failed.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from harness.metric_names import OUTPUT_THROUGHPUT, P99_TTFT_MS
from harness.report.rundata import RunData

UNENFORCED_FAIL = "fail (not enforced)"
NOT_SHOWN = "not_shown"  # a gate's or check's outcome
TEST_NOT_SHOWN = "not shown"  # a test's: the plan asks for it, and its check cannot be shown here
ORDER = ("FAIL", "WARN", "NOT SHOWN", "INCONCLUSIVE", "PASS")
# pytest's exit status of a run where no test failed but the verdict is NOT SHOWN or INCONCLUSIVE: not 0, which
# CI reads as "qualified", and not pytest's own codes (1 failed, 2 interrupted, 3 internal, 4 usage, 5 no tests).
UNDECIDED_EXIT = 6
UNDECIDED = ("NOT SHOWN", "INCONCLUSIVE")


def gate_outcome(gate: dict[str, Any]) -> str:
    """The verdict as the run counts it: a planted fault the gate was expected to catch (an A/B comparison with
    `expect`) counts as a pass when caught and as a fail when not."""
    expected = gate.get("expect")
    if expected is not None:
        return f"{gate['outcome']} (as expected)" if gate["outcome"] == expected else "fail"
    return UNENFORCED_FAIL if gate["outcome"] == "fail" and not gate.get("enforced", True) else str(gate["outcome"])


def check_outcomes(document: dict[str, Any]) -> list[str]:
    """The outcomes of the verdicts among a case's checks (an entry with a `metric` and an `outcome`)."""
    checks = document.get("checks") or {}
    return [
        str(check["outcome"])
        for check in checks.values()
        if isinstance(check, dict) and "outcome" in check and "metric" in check
    ]


@dataclass
class SuiteSummary:
    suite: str
    tests: Counter[str] = field(default_factory=Counter)
    gates: Counter[str] = field(default_factory=Counter)
    checks: Counter[str] = field(default_factory=Counter)
    documents: list[dict[str, Any]] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        if self.tests["failed"] or self.gates["fail"] or self.checks["fail"]:
            return "FAIL"
        if self.gates[UNENFORCED_FAIL]:
            return "WARN"
        if self.tests["xfailed"] or self.tests[TEST_NOT_SHOWN] or self.gates[NOT_SHOWN] or self.checks[NOT_SHOWN]:
            return "NOT SHOWN"
        if self.gates["inconclusive"] or self.checks["inconclusive"]:
            return "INCONCLUSIVE"
        if self.tests["passed"] or self.tests["xpassed"]:
            return "PASS"
        return "SKIPPED" if self.tests["skipped"] else "NOT RUN"

    def numbers(self) -> str:
        return key_numbers(self.suite, self.documents)


def overall_verdict(summaries: Iterable[SuiteSummary], incomplete: str | None = None) -> str:
    """The run's verdict: the first of ORDER any suite has; NOT RUN when no suite passed or failed anything; a run
    that did not finish (`incomplete` says why) cannot pass: INCOMPLETE unless it already failed."""
    verdicts = {s.verdict for s in summaries}
    found = next((v for v in ORDER if v in verdicts), "NOT RUN")
    return "INCOMPLETE" if incomplete and found != "FAIL" else found


def test_outcomes(records: list[dict[str, Any]]) -> dict[str, str]:
    """nodeid -> passed / failed / skipped / not shown / ... over all of a test's phases: a failure in any phase
    wins, and a test that passed its call but skipped in a later phase did not pass."""
    outcomes: dict[str, str] = {}
    for record in records:
        now, new = outcomes.get(record["nodeid"]), record["outcome"]
        if new == "failed" or now is None or (now == "passed" and new in ("skipped", TEST_NOT_SHOWN)):
            outcomes[record["nodeid"]] = new
    return outcomes


def not_run(records: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(outcome, test, reason) of every test that did not run to its end: skipped (the plan does not ask for it)
    or not shown (it does, and the check could not be shown here), in the run's order."""
    outcomes = test_outcomes(records)
    reasons = {r["nodeid"]: str(r.get("reason") or r.get("detail") or "") for r in records if r.get("detail")}
    return [
        (outcome, nodeid, reasons.get(nodeid, ""))
        for nodeid, outcome in outcomes.items()
        if outcome in ("skipped", TEST_NOT_SHOWN, "xfailed")
    ]


def _module(nodeid: str) -> str | None:
    """`suites/serving/test_smoke.py::...` -> `serving.smoke`; None for tests outside suites/."""
    path = nodeid.split("::", 1)[0]
    if not path.startswith("suites/"):
        return None
    return path.removeprefix("suites/").removesuffix(".py").replace("/test_", ".").replace("/", ".")


def summarise(run: RunData) -> list[SuiteSummary]:
    suites: dict[str, SuiteSummary] = defaultdict(lambda: SuiteSummary(""))
    by_test: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for document in run.documents:
        by_test[document.get("test", "")].append(document)
        summary = suites[document["suite"]]
        summary.suite = document["suite"]
        summary.documents.append(document)
        summary.gates.update(gate_outcome(g) for g in document.get("gates", []))
        summary.checks.update(check_outcomes(document))
    # The suites each test module wrote: a test that wrote nothing (skipped, failed early) counts under its
    # module's suite, not under a second name made from the file's (diffusion.t2i, not diffusion.text_to_image).
    # A test whose module writes several suites names its own (the `suite` marker, in its records).
    by_module: dict[str, set[str]] = defaultdict(set)
    for nodeid, documents in by_test.items():
        by_module[nodeid.split("::", 1)[0]].update(d["suite"] for d in documents)
    declared = {r["nodeid"]: r["suite"] for r in run.records if r.get("suite")}
    for nodeid, outcome in test_outcomes(run.records).items():
        module = _module(nodeid)
        written = by_module.get(nodeid.split("::", 1)[0], set())
        fallback = written if len(written) == 1 else ({module} if module else set())
        if nodeid in declared:
            fallback = {declared[nodeid]}
        names = {d["suite"] for d in by_test.get(nodeid, [])} or fallback
        for name in names:
            suites[name].suite = name
            suites[name].tests[outcome] += 1
    return [suites[name] for name in sorted(suites)]


def _fmt(value: Any, digits: int = 1) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "missing"
    return f"{value:,}" if isinstance(value, int) else f"{value:,.{digits}f}"


def key_numbers(suite: str, documents: list[dict[str, Any]]) -> str:
    """A few numbers that say how the suite went; empty when it wrote no case."""
    metrics = [d.get("metrics", {}) for d in documents]
    if not metrics:
        return ""
    if suite == "accuracy.quant":  # the candidate's scores against the reference configuration's
        compared = [
            f"candidate {d['case_id']}: {g['metric']} {_fmt(g.get('candidate_mean'), 3)} vs reference "
            f"{_fmt(g.get('baseline_mean'), 3)}"
            for d in documents
            for g in d.get("gates", [])
        ]
        return "; ".join(compared[:3]) + (f" (+{len(compared) - 3} more)" if len(compared) > 3 else "")
    if suite == "serving.ab":  # each comparison's paired change and the resolution it had
        paired = [
            f"{d['case_id']} {g['metric']} {g['change']:+.1%} (resolution {g['resolution']:.1%})"
            for d in documents
            for g in d.get("gates", [])
            if isinstance(g.get("change"), int | float) and isinstance(g.get("resolution"), int | float)
        ]
        return "; ".join(paired) or f"{len(documents)} comparisons, no paired verdict"
    if suite.startswith("serving."):
        output = [m["output_throughput"] for m in metrics if isinstance(m.get(OUTPUT_THROUGHPUT), int | float)]
        ttft = [m["p99_ttft_ms"] for m in metrics if isinstance(m.get(P99_TTFT_MS), int | float)]
        span = f"{_fmt(min(output))}-{_fmt(max(output))} tok/s" if output else "no throughput"
        return f"{len(metrics)} cases, output {span}, worst TTFT p99 {_fmt(max(ttft) if ttft else None)} ms"
    shown: list[str] = []
    for document, m in zip(documents, metrics, strict=True):
        for key, value in m.items():
            if isinstance(value, int | float) and not key.endswith("/stderr") and len(shown) < 4:
                stderr = m.get(f"{key}/stderr")
                error = f" ± {stderr:.3f}" if isinstance(stderr, int | float) else ""
                shown.append(f"{document['case_id']} {key} {_fmt(value, 3)}{error}")
    return "; ".join(shown)


def suite_lines(summaries: list[SuiteSummary]) -> list[str]:
    lines = []
    for s in summaries:
        counts = ", ".join(f"{n} {k}" for k, n in sorted(s.tests.items()))
        gates = ", ".join(f"{n} {k}" for k, n in sorted(s.gates.items()))
        checks = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(s.checks.items()))
        numbers = s.numbers()
        lines.append(
            f"{s.verdict:<12} {s.suite}: {counts or 'no tests'}"
            + (f"; gates {gates}" if gates else "")
            + (f"; checks {checks}" if checks else "")
            + (f"; {numbers}" if numbers else "")
        )
    return lines
