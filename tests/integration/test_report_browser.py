"""The report in a real browser: Debian's Chromium, headless, renders it offline, runs its script without error
and draws every plot (the script counts plots with visible data marks into `data-plots-drawn`)."""

from __future__ import annotations

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


def test_a_script_error_would_be_seen(tmp_path: Path) -> None:
    """The check above can fail: a page whose script throws is reported with the error."""
    run = run_data(tmp_path / "run1")
    run.directory.mkdir()
    page = write_report(run)
    page.write_text(page.read_text().replace("</body>", "<script>undefinedFunction();</script></body>"))
    attributes = html_attributes(rendered_dom(page))
    assert "undefinedFunction" in attributes.get("data-errors", "")
