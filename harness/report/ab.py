"""The report's A/B section: one row per comparison and metric of the plan's `ab:` section, both sides measured in
this run in turn, the paired change with its one-sided bounds, the resolution it reached, and the verdict as the
run counts it (a planted fault the plan expects counts as a pass when caught)."""

from __future__ import annotations

from html import escape
from typing import Any

from harness.report.cells import table
from harness.report.rundata import RunData
from harness.report.summary import gate_outcome


def _percent(value: Any) -> str | None:
    return f"{value:+.1%}" if isinstance(value, int | float) else None


def _interval(gate: dict[str, Any]) -> str | None:
    low, high = gate.get("low"), gate.get("high")
    if not isinstance(low, int | float) or not isinstance(high, int | float):
        return None
    return f"{low:+.1%} to {high:+.1%}"


def ab_section(run: RunData) -> str:
    documents = run.of("serving.ab")
    if not documents:
        return ""
    rows = []
    for document in documents:
        config = document.get("config", {})
        candidate = ", ".join(f"{k}: {v}" for k, v in (config.get("candidate") or {}).items()) or "the reference"
        for gate in document.get("gates", []):
            metric = gate["metric"]
            rows.append(
                [
                    document["case_id"],
                    candidate,
                    config.get("expect") or "no regression",
                    metric,
                    document["metrics"].get(f"reference/{metric}"),
                    document["metrics"].get(f"candidate/{metric}"),
                    _percent(gate.get("change")),
                    _interval(gate),
                    None if gate.get("resolution") is None else f"{gate['resolution']:.1%}",
                    gate_outcome(gate).upper(),
                    f"{gate.get('n_candidate', 0)} pairs",
                ]
            )
    headers = [
        "comparison",
        "candidate",
        "expected",
        "metric",
        "reference mean",
        "candidate mean",
        "paired change",
        "bounds",
        "resolution",
        "verdict",
        "pairs",
    ]
    note = (
        "<p>Reference and candidate servers measured in turn in this run; the change is the mean of the paired "
        "relative differences (negative is worse), its bounds one-sided at the plan's confidence; the resolution is "
        "the smallest regression this comparison fails 95% of the time. A comparison that expects a planted fault "
        "counts as a pass when the gate catches it.</p>"
    )
    messages = "".join(
        f"<li><code>{escape(d['case_id'])}</code>: {escape(g.get('message', ''))}</li>"
        for d in documents
        for g in d.get("gates", [])
    )
    return f"<h2>A/B comparisons</h2>{note}{table(headers, rows)}<ul>{messages}</ul>"
