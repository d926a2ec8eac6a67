"""The report in a real browser: Debian's Chromium, headless, renders it offline, runs its script without error
and draws every plot (the script counts plots with visible data marks into `data-plots-drawn`)."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.report.html import write_report
from harness.results.index import RunIndex
from tests.report_data import run_data

pytestmark = pytest.mark.integration


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "chromium is not installed: scripts/bootstrap installs Debian's package"
    return found


def rendered_dom(page: Path) -> str:
    """The DOM after the page's scripts ran, with networking off (the report must not need it)."""
    args = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--proxy-server=127.0.0.1:9",  # any network request fails: the page must stand alone
        "--virtual-time-budget=5000",
        "--dump-dom",
        page.as_uri(),
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def html_attributes(dom: str) -> dict[str, str]:
    tag = re.search(r"<html([^>]*)>", dom)
    assert tag, dom[:500]
    return dict(re.findall(r'([\w-]+)="([^"]*)"', tag.group(1)))


def test_the_report_draws_every_plot_without_script_errors(tmp_path: Path) -> None:
    run = run_data(tmp_path / "run2")
    run.directory.mkdir()
    index = RunIndex(tmp_path)
    for run_id in ("run1", "run2"):
        index.start_run(run_id, tmp_path / run_id, "cpu-tiny", "cpu")
        for document in run.documents:
            index.record_case(run_id, document, tmp_path / "x.json", None)
    page = write_report(run, index)
    plots = page.read_text().count('<svg class="plot"')  # plots with data; empty ones are classed "plot empty"
    assert plots >= 9, "serving, accuracy, training and trend plots"
    attributes = html_attributes(rendered_dom(page))
    assert attributes.get("data-ready") == "1", "the report's script ran to the end"
    assert "data-errors" not in attributes, attributes.get("data-errors")
    assert int(attributes["data-plots-drawn"]) == plots, "every plot has visible data marks in the browser"


LONG = "rate8.0-n64-c16/a-case-name-long-enough-to-need-three-lines,planted"


def test_no_text_is_cut_a_long_label_is_wrapped_whole(tmp_path: Path) -> None:
    """The main job's report cut labels (an accuracy x label, a legend entry `static p16-in256-out6`) and ran its
    serving table off the page: the page's script measures every SVG text against its plot's box and every table
    against the page, and a planted long case name must come out whole."""
    run = run_data(tmp_path / "run1")
    planted = copy.deepcopy(next(d for d in run.documents if d["suite"] == "serving.dynamic"))
    planted["case_id"] = LONG
    run.documents.append(planted)
    run.directory.mkdir()
    dom = rendered_dom(write_report(run))
    attributes = html_attributes(dom)
    assert attributes.get("data-ready") == "1"
    assert attributes.get("data-cut") == "0", attributes.get("data-cut-texts")
    texts = re.findall(r"<text[^>]*>((?:<tspan[^>]*>[^<]*</tspan>)+)</text>", dom)
    whole = ["".join(re.findall(r">([^<]*)</tspan>", t)).replace(" ", "") for t in texts]
    assert f"dynamic{LONG}" in whole, "the legend entry, whole, over several lines"


def test_a_cut_text_would_be_seen(tmp_path: Path) -> None:
    """The check above can fail: a text planted past a plot's right edge is reported by name."""
    run = run_data(tmp_path / "run1")
    run.directory.mkdir()
    page = write_report(run)
    planted = '<text x="630" y="20">planted overflow</text></svg>'
    page.write_text(page.read_text().replace("</svg>", planted, 1))
    attributes = html_attributes(rendered_dom(page))
    assert attributes.get("data-cut") == "1"
    assert "planted overflow" in attributes.get("data-cut-texts", "")


def test_a_script_error_would_be_seen(tmp_path: Path) -> None:
    """The check above can fail: a page whose script throws is reported with the error."""
    run = run_data(tmp_path / "run1")
    run.directory.mkdir()
    page = write_report(run)
    page.write_text(page.read_text().replace("</body>", "<script>undefinedFunction();</script></body>"))
    attributes = html_attributes(rendered_dom(page))
    assert "undefinedFunction" in attributes.get("data-errors", "")
