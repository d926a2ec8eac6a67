"""The HTML report and its plots, rendered from a miniature run: every section filled, text escaped, offline."""

from __future__ import annotations

import re
from pathlib import Path

from harness.report.html import render, write_report
from harness.report.learning import accuracy_section
from harness.report.summary import suite_lines, summarise
from harness.report.svg import Series, cdf_chart, line_chart
from harness.results.index import RunIndex
from tests.report_data import HOSTILE, run_data

PLOTS = (
    "throughput-vs-concurrency",
    "ttft-vs-rate",
    "tpot-vs-rate",
    "ttft_ms-distribution",
    "e2el_ms-distribution",
    "accuracy-vs-baseline",
    "loss-vs-reference",
)


def test_every_plot_is_drawn_from_the_run(tmp_path: Path) -> None:
    html = render(run_data(tmp_path / "run1"))
    for name in PLOTS:
        match = re.search(rf'<svg class="plot" data-plot="{name}".*?</svg>', html, re.S)
        assert match, f"{name} missing or empty"
        assert 'class="mark"' in match.group(0), f"{name} has no data marks"
    assert "No run index" in html


def test_trends_come_from_the_run_index(tmp_path: Path) -> None:
    run = run_data(tmp_path / "run3")
    index = RunIndex(tmp_path)
    for n in range(3):
        index.start_run(f"run{n}", tmp_path / f"run{n}", "cpu-tiny", "cpu")
        for document in run.documents:
            index.record_case(f"run{n}", document, tmp_path / "x.json", None)
    html = render(run, index)
    match = re.search(r'<svg class="plot" data-plot="trend-serving.static".*?</svg>', html, re.S)
    assert match, "trend plot drawn"
    assert match.group(0).count("<circle") == 3 * 6, "three runs of six static cases"


def test_text_from_models_and_logs_is_escaped(tmp_path: Path) -> None:
    html = render(run_data(tmp_path / "run1"))
    assert HOSTILE not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert html.count("<script>") == 1, "only the report's own script"


def test_the_report_needs_no_network(tmp_path: Path) -> None:
    html = render(run_data(tmp_path / "run1"))
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", html), "no CDN, no remote fonts"
    assert "@import" not in html


def test_suite_verdicts(tmp_path: Path) -> None:
    lines = suite_lines(summarise(run_data(tmp_path / "run1")))
    assert any(line.startswith("FAIL") and "serving.smoke: 1 failed" in line for line in lines), lines
    static = next(line for line in lines if "serving.static" in line)
    assert static.startswith("PASS"), static
    assert "6 cases, output 164.0-1,856.0 tok/s" in static


def test_gate_changes_are_shown_with_their_kind(tmp_path: Path) -> None:
    html = render(run_data(tmp_path / "run1"))
    assert '<td class="text">+1.00%</td>' in html, "a relative change of a serving gate"
    assert "-0.0100 (absolute)" in html, "an accuracy check's score difference"


def test_ab_comparisons_have_their_own_table_and_stay_out_of_the_serving_one(tmp_path: Path) -> None:
    """The A/B rows' metrics are reference/... and candidate/...: in the serving table every cell read `missing`."""
    html = render(run_data(tmp_path / "run1"))
    serving = html[html.index("<h2>Serving</h2>") : html.index("<h2>A/B comparisons</h2>")]
    assert "serving.ab" not in serving
    ab = html[html.index("<h2>A/B comparisons</h2>") :]
    ab = ab[: ab.index("<h2>", 5)]
    row = re.search(r"<tr><td class=\"text\">max-num-seqs-2</td>(.*?)</tr>", ab)
    assert row, ab[:2000]
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1))
    assert cells == [
        "p16-in64-out64", "max-num-seqs: 2", "fail", "output_throughput", "1,000", "300", "-70.0%",
        "-75.0% to -65.0%", "22.0%", "FAIL (AS EXPECTED)", "6 pairs",
    ]  # fmt: skip
    assert "missing" not in ab


def test_write_report_writes_html_and_combined_json(tmp_path: Path) -> None:
    run = run_data(tmp_path / "run1")
    run.directory.mkdir()
    path = write_report(run)
    assert path.read_text().startswith("<!DOCTYPE html>")
    assert (run.directory / "cases.json").is_file()


def test_plots_say_when_there_is_no_data() -> None:
    empty = line_chart("x", "Nothing", [Series("a", [(1.0, None)])], "x", "y")
    assert 'class="plot empty"' in empty
    assert "no data in this run" in empty
    assert "no measurements" in cdf_chart("h", "Nothing", {"a": []}, "ms")


def test_gaps_stay_gaps() -> None:
    """A missing value breaks the line instead of being drawn as 0."""
    svg = line_chart("x", "Gap", [Series("a", [(1.0, 1.0), (2.0, 2.0), (3.0, None), (4.0, 4.0), (5.0, 5.0)])], "x", "y")
    assert svg.count('<path class="mark"') == 2


def test_version_2_verdicts_still_render(tmp_path: Path) -> None:
    """Run folders written before llmqual.case/3: an accuracy gate's `delta`, a training check's `ok`."""
    from harness.report.html import _change

    assert _change({"metric": "t/acc,none", "outcome": "pass", "message": "", "delta": -0.02}) == "-0.0200 (absolute)"
    assert _change({"metric": "t/acc,none", "change": -0.02, "absolute": True}) == "-0.0200 (absolute)"
    assert _change({"metric": "output_throughput", "change": -0.02}) == "-2.00%"


def test_a_distribution_spanning_decades_gets_a_log_axis() -> None:
    """The saturated case's latencies (seconds) squashed a light case's (milliseconds) into one pixel column."""
    spread = cdf_chart(
        "d", "t", {"light": [5.0 + i for i in range(20)], "saturated": [2000.0 + i for i in range(20)]}, "ms"
    )
    assert "ms, log scale" in spread
    for tick in (">10<", ">100<", ">1,000<"):
        assert tick in spread
    narrow = cdf_chart("d", "t", {"a": [5.0, 6.0], "b": [50.0, 60.0]}, "ms")
    assert "log scale" not in narrow


def test_an_accuracy_metric_is_named_whole_on_its_axis(tmp_path: Path) -> None:
    """The chart cut `llmqual_arith_gen/exact_match,strict-match` to its first 32 characters."""
    run = run_data(tmp_path / "run1")
    accuracy = next(d for d in run.documents if d["suite"] == "accuracy.lm_eval")
    accuracy["metrics"] = {"llmqual_arith_gen/exact_match,strict-match": 0.8}
    chart = accuracy_section(run)
    lines = re.findall(r'<tspan x="[^"]*" dy="[^"]*">([^<]*)</tspan>', chart)
    assert "".join(lines).count("llmqual_arith_gen/exact_match,strict-match") == 1
