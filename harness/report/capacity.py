"""The report's capacity sections: the probe's table (longest max-model-len per card count and memory) and the SLO
rate search (the knee, each objective plotted against the rate with its bound)."""

from __future__ import annotations

from html import escape

from harness.metric_names import SUSTAINABLE_RATE_PER_S
from harness.report.cells import table
from harness.report.rundata import RunData
from harness.report.svg import Series, line_chart


def capacity_section(run: RunData) -> str:
    """Empty when the run measured no capacity question."""
    probes = [d for d in run.documents if d["suite"] == "capacity"]
    if not probes:
        return ""
    rows = []
    for d in probes:
        m, config = d["metrics"], d["config"]
        length = m.get("max_model_len")
        refused = d.get("checks", {}).get("refused_by_engine")
        rows.append(
            [
                config.get("model"),
                config.get("cards"),
                config.get("memory"),
                f"{length / 1024:g}K" if isinstance(length, int) else None,
                length,
                m.get("first_failed"),
                "vLLM's KV check" if refused else "",
                m.get("engine_estimate"),
                m.get("starts"),
            ]
        )
    headers = ["model", "cards", "memory", "max-model-len", "tokens", "first failed", "refused by", "vLLM's estimate"]
    intro = (
        "<p>The longest max-model-len that started and served a static benchmark, per card count and memory; "
        f"every attempt is in <code>{escape('capacity/attempts.jsonl')}</code>.</p>"
    )
    return "<h2>Capacity</h2>" + intro + table([*headers, "server starts"], rows)


def sla_section(run: RunData) -> str:
    """The SLO rate search: the knee with its interval, and each objective against the rate with its bound."""
    knees = [d for d in run.documents if d["suite"] == "capacity.sla"]
    if not knees:
        return ""
    knee = knees[-1]
    steps = knee.get("checks", {}).get("steps", [])
    found, above = knee["metrics"].get(SUSTAINABLE_RATE_PER_S), knee["metrics"].get("first_unsustainable_rate_per_s")
    if found is None:
        said = "no rate tried met the objectives"
    else:
        said = f"sustainable at <strong>{found:g} req/s</strong>" + (
            f", not at {above:g} req/s" if above is not None else " (the highest rate tried)"
        )
    parts = [f"<h2>Highest rate within the objectives</h2><p>{said}; every step below.</p>"]
    bounds: dict[str, float] = {}
    for step in steps:
        for verdict in step["verdicts"]:
            bounds[verdict["metric"]] = verdict["bound"]
    for metric, bound in bounds.items():
        measured = Series("measured (mean, 95% interval)", [], [])
        for step in sorted(steps, key=lambda s: s["rate"]):
            verdict = next((v for v in step["verdicts"] if v["metric"] == metric), None)
            if verdict is None or verdict["mean"] is None:
                continue
            measured.points.append((float(step["rate"]), verdict["mean"]))
            measured.errors.append(verdict["high"] - verdict["mean"])
        rates = [x for x, _ in measured.points] or [0.0, 1.0]
        line = Series(f"objective {bound:g}", [(min(rates), bound), (max(rates), bound)], dashed=True)
        parts.append(line_chart(f"sla-{metric}", f"{metric} against request rate", [measured, line], "req/s", metric))
    rows = [
        [
            step["rate"],
            "yes" if step["sustainable"] else "no",
            step["invalid"] or "; ".join(v["message"] for v in step["verdicts"]),
        ]
        for step in steps
    ]
    return "".join(parts) + table(["request rate", "sustainable", "verdicts"], rows)
