"""One verdict and a few key numbers per suite of a run: what the terminal summary prints and the HTML report heads
with. Pure: it reads a RunData.

A suite is the `suite` of the case documents a test wrote (serving.static, accuracy.lm_eval, training.alignment,
...), or the test's module for tests that write none (smoke, preflight). Its verdict is FAIL when a test failed or
an enforced gate failed, WARN when a gate the plan does not enforce failed, INCONCLUSIVE when a gate could not
decide, PASS when tests passed, SKIPPED when all skipped.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from harness.metric_names import OUTPUT_THROUGHPUT, P99_TTFT_MS
from harness.report.rundata import RunData

UNENFORCED_FAIL = "fail (not enforced)"


def gate_outcome(gate: dict[str, Any]) -> str:
    """The verdict as the run counts it: a planted fault the gate was expected to catch (an A/B comparison with
    `expect`) counts as a pass when caught and as a fail when not."""
    expected = gate.get("expect")
    if expected is not None:
        return f"{gate['outcome']} (as expected)" if gate["outcome"] == expected else "fail"
    return UNENFORCED_FAIL if gate["outcome"] == "fail" and not gate.get("enforced", True) else str(gate["outcome"])


@dataclass
class SuiteSummary:
    suite: str
    tests: Counter[str] = field(default_factory=Counter)
    gates: Counter[str] = field(default_factory=Counter)
    documents: list[dict[str, Any]] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        if self.tests["failed"] or self.gates["fail"]:
            return "FAIL"
        if self.gates[UNENFORCED_FAIL]:
            return "WARN"
        if self.gates["inconclusive"]:
            return "INCONCLUSIVE"
        if self.tests["passed"]:
            return "PASS"
        return "SKIPPED" if self.tests["skipped"] else "NOT RUN"

    def numbers(self) -> str:
        return key_numbers(self.suite, self.documents)


def test_outcomes(records: list[dict[str, Any]]) -> dict[str, str]:
    """nodeid -> passed / failed / skipped over all of a test's phases."""
    outcomes: dict[str, str] = {}
    for record in records:
        now = outcomes.get(record["nodeid"])
        if record["outcome"] == "failed" or now is None or (now == "passed" and record["outcome"] == "skipped"):
            outcomes[record["nodeid"]] = record["outcome"]
    return outcomes


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
    for nodeid, outcome in test_outcomes(run.records).items():
        module = _module(nodeid)
        names = {d["suite"] for d in by_test.get(nodeid, [])} or ({module} if module else set())
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
        numbers = s.numbers()
        lines.append(
            f"{s.verdict:<12} {s.suite}: {counts or 'no tests'}"
            + (f"; gates {gates}" if gates else "")
            + (f"; {numbers}" if numbers else "")
        )
    return lines
