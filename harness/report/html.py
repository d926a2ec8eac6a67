"""The release qualification report: one self-contained HTML file per run (no CDN, no web fonts, opens offline).

Sections: verdict per suite, the tests that did not run and why, environment fingerprint, serving (throughput
against concurrency, TTFT/TPOT percentiles against request rate, latency distributions, tables), accuracy against
baseline with error bars, training loss against its reference, gate verdicts, trends over the last runs, failed
tests. Every string that comes from a model, a log or a test is escaped. A small inline script sorts tables and
records script errors in `data-errors` (the browser test reads it). `write_report` also writes `cases.json`,
every case document combined.
"""

from __future__ import annotations

import time
from collections import Counter
from html import escape
from pathlib import Path
from typing import Any

from harness.metric_names import (
    OUTPUT_THROUGHPUT,
    REQUEST_THROUGHPUT,
    TOKENS_PER_S_PER_CARD,
)
from harness.report.ab import ab_section
from harness.report.capacity import capacity_section, sla_section
from harness.report.cells import table
from harness.report.diffusion import diffusion_section
from harness.report.learning import accuracy_section, training_section
from harness.report.profile import profile_section
from harness.report.rundata import RunData
from harness.report.serving import serving_section
from harness.report.summary import gate_outcome, not_run, overall_verdict, summarise, test_outcomes
from harness.report.svg import Series, line_chart
from harness.report.telemetry import telemetry_section
from harness.report.workloads import replay_section, sessions_section
from harness.results.case import write_json
from harness.results.index import RunIndex

TREND_RUNS = 10

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:1.5em} h2{border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:2em}
table{border-collapse:collapse;margin:8px 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f4f4f4;cursor:pointer} td.text,th.text{text-align:left}
.PASS{color:#116611;font-weight:bold} .FAIL,.fail{color:#b00;font-weight:bold}
.INCONCLUSIVE,.inconclusive,.WARN,.INCOMPLETE,.NOT-SHOWN,.not_shown{color:#a60;font-weight:bold}
.SKIPPED,.NOT-RUN{color:#666}
svg.plot{width:100%;max-width:760px;height:auto;display:block;margin:12px 0;font-size:11px}
pre{background:#f8f8f8;padding:8px;overflow-x:auto;font-size:.85em;white-space:pre-wrap}
div.scroll{overflow-x:auto;max-width:100%}
"""

SCRIPT = """
(function () {
  var errors = [];
  window.addEventListener("error", function (e) {
    errors.push(String(e.message)); document.documentElement.dataset.errors = errors.join(" | ");
  });
  function sortBy(table, column) {
    var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
    var asc = table.dataset.sorted !== String(column);
    rows.sort(function (a, b) {
      var x = a.cells[column].textContent, y = b.cells[column].textContent;
      var nx = parseFloat(x.replace(/,/g, "")), ny = parseFloat(y.replace(/,/g, ""));
      var c = (isNaN(nx) || isNaN(ny)) ? x.localeCompare(y) : nx - ny;
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    table.dataset.sorted = asc ? String(column) : "";
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      th.addEventListener("click", function () { sortBy(table, i); });
    });
  });
  var drawn = 0;
  document.querySelectorAll("svg.plot").forEach(function (svg) {
    var marks = svg.querySelectorAll(".mark"), box = svg.getBoundingClientRect();
    if (marks.length && box.width > 0 && box.height > 0) { drawn++; }
  });
  document.documentElement.dataset.plotsDrawn = String(drawn);
  // Text a reader cannot read whole: an SVG text outside its plot's drawing area, or a table wider than its
  // section with no scrolling box around it. Listed (plot or table, then the text) for the browser test.
  var cut = [];
  document.querySelectorAll("svg.plot").forEach(function (svg) {
    var view = svg.viewBox.baseVal;
    svg.querySelectorAll("text").forEach(function (text) {
      var b = text.getBBox(), m = text.getCTM ? svg.getCTM().inverse().multiply(text.getCTM()) : null;
      var corners = [[b.x, b.y], [b.x + b.width, b.y], [b.x, b.y + b.height], [b.x + b.width, b.y + b.height]];
      var out = corners.some(function (c) {
        var x = m ? m.a * c[0] + m.c * c[1] + m.e : c[0], y = m ? m.b * c[0] + m.d * c[1] + m.f : c[1];
        return x < view.x - 0.5 || y < view.y - 0.5 || x > view.x + view.width + 0.5 || y > view.y + view.height + 0.5;
      });
      if (out) { cut.push((svg.dataset.plot || "plot") + ": " + text.textContent); }
    });
  });
  document.querySelectorAll("table").forEach(function (table) {
    var holder = table.parentElement;
    var scrolls = holder && holder.classList.contains("scroll");
    if (!scrolls && table.getBoundingClientRect().right > document.body.getBoundingClientRect().right + 1) {
      cut.push("table: " + (table.tHead ? table.tHead.textContent.slice(0, 60) : "?"));
    }
  });
  document.documentElement.dataset.cut = String(cut.length);
  if (cut.length) { document.documentElement.dataset.cutTexts = cut.join(" | "); }
  document.documentElement.dataset.ready = "1";
})();
"""


def verdict_section(run: RunData) -> str:
    def counts(counter: dict[str, int]) -> str:
        return ", ".join(f"{n} {k}" for k, n in sorted(counter.items()))

    rows = [
        [
            f'<span class="{s.verdict.replace(" ", "-")}">{s.verdict}</span>',
            s.suite,
            counts(s.tests),
            counts(s.gates),
            counts(s.checks).replace("_", " "),
            s.numbers(),
        ]
        for s in summarise(run)
    ]
    columns = ("verdict", "suite", "tests", "gates", "checks", "key numbers")
    head = "".join(f"<th class='text'>{h}</th>" for h in columns)
    body = "".join(
        f"<tr><td class='text'>{r[0]}</td>"
        + "".join(f"<td class='text'>{escape(str(v) if v else '')}</td>" for v in r[1:])
        + "</tr>"
        for r in rows
    )
    inner = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f"<h2>Verdict per suite</h2><div class='scroll'>{inner}</div>"


def not_run_section(run: RunData) -> str:
    """Every test that did not run to its end, with its reason: what the verdicts above do not cover."""
    rows = not_run(run.records)
    if not rows:
        return "<h2>Tests not run</h2><p>None: every selected test ran.</p>"
    intro = (
        "<p>Skipped: the plan does not ask for it (no such section or option, another platform); counted in the "
        "table above and never as passed. Not shown: the plan asks for it, and its check could not be shown here; "
        "its suite reads NOT SHOWN. Expected failure (xfailed): a check known not to hold, never a pass.</p>"
    )
    return "<h2>Tests not run</h2>" + intro + table(["outcome", "test", "reason"], [list(r) for r in rows])


def environment_section(run: RunData) -> str:
    environment = dict(run.summary.get("environment", {}))
    packages = environment.pop("packages", {}) or {}
    rows = [[k, v] for k, v in environment.items()] + [[f"package {k}", v] for k, v in packages.items()]
    return "<h2>Environment</h2>" + table(["fact", "value"], rows)


def _change(gate: dict[str, Any]) -> str | None:
    """Relative change of a serving or training gate; absolute score difference of an accuracy check."""
    if isinstance(gate.get("change"), int | float):
        change = gate["change"] + 0.0  # -0.0 reads as a loss: no change is 0
        if gate.get("absolute"):
            return "no change (absolute)" if round(change, 4) == 0 else f"{change:+.4f} (absolute)"
        return f"{change:+.2%}"
    if isinstance(gate.get("delta"), int | float):  # an accuracy check in a llmqual.case/2 document
        return f"{gate['delta']:+.4f} (absolute)"
    return None


def gates_section(run: RunData) -> str:
    rows = [
        [
            d["suite"],
            d["case_id"],
            g["metric"],
            gate_outcome(g),
            g.get("baseline_mean"),
            g.get("candidate_mean"),
            _change(g),
            g["message"],
        ]
        for d in run.documents
        for g in d.get("gates", [])
    ]
    intro = "<p>No baseline for this plan yet: record one with <code>llmqual baseline update RUN</code>.</p>"
    body = table(["suite", "case", "metric", "outcome", "reference mean", "run mean", "change", "detail"], rows)
    heading = "<h2>Every gate: against the baseline, the A/B reference, the quantisation reference</h2>"
    return heading + (body if rows else intro)


def trends_section(run: RunData, index: RunIndex | None, plan: str | None) -> str:
    parts = [f"<h2>Trends over the last {TREND_RUNS} runs</h2>"]
    if index is None:
        return parts[0] + "<p>No run index.</p>"
    picks = [
        ("serving.static", OUTPUT_THROUGHPUT),
        ("serving.dynamic", REQUEST_THROUGHPUT),
        ("training.throughput", TOKENS_PER_S_PER_CARD),
    ]
    for suite, metric in picks:
        series = []
        order: dict[str, int] = {}
        for d in run.of(suite):
            points = index.trend(suite, d["case_id"], metric, plan, TREND_RUNS)
            for p in points:
                order.setdefault(p.run_id, len(order))
            series.append(Series(d["case_id"], [(float(order[p.run_id]), p.value) for p in points]))
        names = {float(i): run_id[:15] for run_id, i in order.items()}
        parts.append(line_chart(f"trend-{suite}", f"{suite}: {metric} by run", series, "run", metric, names or None))
    return "".join(parts)


def failures_section(run: RunData) -> str:
    failed = [r for r in run.records if r["outcome"] == "failed"]
    if not failed:
        return "<h2>Failed tests</h2><p>None.</p>"
    items = "".join(
        f"<h3>{escape(r['nodeid'])} ({escape(r['phase'])})</h3><pre>{escape(r.get('detail') or '')}</pre>"
        for r in failed
    )
    return "<h2>Failed tests</h2>" + items


def render(run: RunData, index: RunIndex | None = None) -> str:
    plan = next(iter(run.summary.get("plan_names", {}).values()), None)
    incomplete = run.incomplete
    overall = overall_verdict(summarise(run), incomplete)
    finished = run.summary.get("finished")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(finished)) if finished else "unfinished"
    note = f" <strong>{escape(incomplete)}</strong>." if incomplete else ""
    tests = Counter(test_outcomes(run.records).values())
    if tests:
        note += " Tests: " + escape(", ".join(f"{n} {k}" for k, n in sorted(tests.items()))) + "."
    body = "".join(
        [
            f"<h1>llmqual qualification report: {escape(plan or 'no plan')}</h1>",
            f"<p>Run <code>{escape(run.run_id)}</code>, finished {escape(when)}. Overall: "
            f'<span class="{overall.replace(" ", "-")}">{overall}</span>.{note}</p>',
            verdict_section(run),
            not_run_section(run),
            environment_section(run),
            serving_section(run),
            replay_section(run),
            sessions_section(run),
            telemetry_section(run),
            ab_section(run),
            accuracy_section(run),
            training_section(run),
            diffusion_section(run),
            capacity_section(run),
            sla_section(run),
            profile_section(run),
            gates_section(run),
            trends_section(run, index, plan),
            failures_section(run),
        ]
    )
    return page(f"llmqual {run.run_id}", body)


def page(title: str, body: str) -> str:
    """A whole HTML page in the report's style."""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body>{body}<script>{SCRIPT}</script></body></html>"
    )


def write_report(run: RunData, index: RunIndex | None = None) -> Path:
    """Write `report.html` and `cases.json` into the run folder; returns the HTML's path."""
    write_json(run.directory / "cases.json", {"run_id": run.run_id, "cases": run.documents})
    path = run.directory / "report.html"
    staging = path.with_suffix(".html.tmp")
    staging.write_text(render(run, index), encoding="utf-8")
    staging.replace(path)
    return path
