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


def _build(side: Any) -> str:
    """What a side's build is: its description (older documents: the server overrides)."""
    if isinstance(side, dict) and "build" in side:
        version = f" (serves vLLM {side['vllm_version']})" if side.get("vllm_version") else ""
        return f"{side['build']}{version}"
    return ", ".join(f"{k}: {v}" for k, v in (side or {}).items()) or "the plan's build"


def ab_section(run: RunData) -> str:
    documents = run.of("serving.ab")
    if not documents:
        return ""
    rows = []
    for document in documents:
        config = document.get("config", {})
        candidate = _build(config.get("candidate"))
        set_aside = config.get("pairs_set_aside") or 0
        for gate in document.get("gates", []):
            metric = gate["metric"]
            rows.append(
                [
                    document["case_id"],
                    gate.get("case") or "",
                    candidate,
                    config.get("expect") or "no regression",
                    metric,
                    gate.get("baseline_mean"),
                    gate.get("candidate_mean"),
                    _percent(gate.get("change")),
                    _interval(gate),
                    None if gate.get("resolution") is None else f"{gate['resolution']:.1%}",
                    gate_outcome(gate).upper(),
                    f"{gate.get('n_candidate', 0)} pairs" + (f" ({set_aside} set aside)" if set_aside else ""),
                ]
            )
    headers = [
        "comparison",
        "case",
        "candidate build",
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
        "<p>Reference and candidate builds measured in turn in this run, in blocks of two pairs (AB BA); the change "
        "is the median of the paired relative differences (negative is worse), its bounds one-sided at the plan's "
        "confidence (sign test); the resolution is the smallest regression this comparison fails 95% of the time. "
        "Pairs with a window in which other processes kept the host busy are set aside and counted. The means are "
        "over every clean window, slow ones included, so their ratio can differ from the median change, which a "
        "stalled window does not move. A comparison that expects a planted fault counts as a pass when the gate "
        "catches it.</p>"
    )
    messages = "".join(
        f"<li><code>{escape(d['case_id'])}</code>: {escape(g.get('message', ''))}</li>"
        for d in documents
        for g in d.get("gates", [])
    )
    return f"<h2>A/B comparisons</h2>{note}{table(headers, rows)}<ul>{messages}</ul>"
