"""The report's accuracy and training sections: scores against their baselines with error bars, the loss curve
against its reference, the training checks and numbers."""

from __future__ import annotations

from harness.report.cells import table
from harness.report.rundata import RunData
from harness.report.svg import Series, line_chart


def accuracy_section(run: RunData) -> str:
    docs = run.of("accuracy.")
    rows = []
    value_series = Series("this run", [], [], joined=False)
    base_series = Series("baseline", [], [], dashed=True, joined=False)
    names: dict[float, str] = {}
    for d in docs:
        gates = {g["metric"]: g for g in d.get("gates", [])}
        if d["suite"] == "accuracy.quant":  # the candidate's score against the reference's, measured in this run
            for metric, gate in gates.items():
                rows.append(
                    [d["suite"], f"candidate {d['case_id']}", metric, gate.get("candidate_mean"),
                     (gate.get("numbers") or {}).get("stderr"), gate.get("baseline_mean"), gate.get("outcome")]
                )  # fmt: skip
            continue
        for metric, value in d["metrics"].items():
            if metric.endswith("/stderr") or not isinstance(value, int | float):
                continue
            stderr = d["metrics"].get(f"{metric}/stderr")
            base = gates.get(metric, {})
            x = float(len(names))
            if d["suite"] == "accuracy.lm_eval":
                names[x] = metric  # wrapped whole by the chart, never cut
            rows.append(
                [d["suite"], d["case_id"], metric, value, stderr, base.get("baseline_mean"), base.get("outcome")]
            )
            value_series.points.append((x, float(value)))
            value_series.errors.append(stderr if isinstance(stderr, int | float) else None)
            base_value = base.get("baseline_mean")
            base_series.points.append((x + 0.2, base_value))  # beside the run's point, not under it
            base_series.errors.append(base.get("baseline_stderr"))
    chart = line_chart(
        "accuracy-vs-baseline",
        "Accuracy against baseline (error bars: stderr)",
        [value_series, base_series],
        "task metric",
        "score",
        names or None,
    )
    headers = ["suite", "case", "metric", "value", "stderr", "baseline (quant: the reference)", "gate"]
    return "<h2>Accuracy</h2>" + chart + table(headers, rows)


def training_section(run: RunData) -> str:
    docs = run.of("training.")
    parts = ["<h2>Training</h2>"]
    curves = next((d for d in docs if "reference" in d.get("series", {})), None) or next(
        (d for d in docs if d.get("series")), None
    )
    series = []
    for name, points in (curves or {}).get("series", {}).items():
        series.append(Series(name, [(float(x), y) for x, y in points], dashed=name == "reference"))
    parts.append(line_chart("loss-vs-reference", "Loss curve against its reference", series, "step", "loss"))
    rows = []
    for d in docs:
        for name, check in d.get("checks", {}).items():
            if isinstance(check, dict) and ("outcome" in check or "ok" in check):  # "ok": llmqual.case/2
                ok = check["outcome"] == "pass" if "outcome" in check else check["ok"]
                rows.append([d["suite"], d["case_id"], name, "ok" if ok else "FAILED", check.get("message")])
    parts.append(table(["suite", "case", "check", "result", "message"], rows))
    metric_rows = [
        [d["suite"], d["case_id"], k, v] for d in docs for k, v in d["metrics"].items() if isinstance(v, int | float)
    ]
    parts.append(table(["suite", "case", "metric", "value"], metric_rows))
    return "".join(parts)
