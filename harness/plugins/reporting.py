"""The run's report as a pytest plugin: each test's outcome appended to the run folder as it happens; at the end
the run summary, the index entry, the report (HTML and combined JSON) and the terminal summary.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from harness.errors import HarnessError
from harness.fingerprint import fingerprint
from harness.plugins.markers import MARKERS, declare_suites, declared_suite, outcome
from harness.plugins.stash import INDEX_KEY, PLANS_KEY, POOL_KEY, SINK_KEY
from harness.report.summary import TEST_NOT_SHOWN, UNDECIDED, UNDECIDED_EXIT, overall_verdict, suite_lines
from harness.results.sink import case_line
from harness.run import Run
from harness.secrets import scrub_folder

RUN_STATUS = {0: "passed", 2: "interrupted", 5: "no tests"}  # pytest's exit status -> the run's; else "failed"


class RunRecorder:
    """Writes each test's outcome to the run folder as it happens; at the end the run summary, the index entry,
    the report (HTML and combined JSON) and the terminal summary."""

    def __init__(self, config: pytest.Config, run: Run) -> None:
        self.config = config
        self.run = run
        self.started = time.time()
        self.summary_path: Path | None = None
        self.report_path: Path | None = None
        self.summary: dict[str, Any] = {}
        self.lines: list[str] = []
        self.overall: str | None = None  # the run's verdict (harness.report.summary), when suites ran
        self.latest_note: str | None = None  # why reports/latest does not name this run
        self.finish_error: str | None = None

    @property
    def is_worker(self) -> bool:
        """A pytest-xdist worker: the controller sees every worker's reports again and records them once."""
        return getattr(self.config, "workerinput", None) is not None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.is_worker or (report.when != "call" and not (report.failed or report.skipped)):
            return
        record = {
            "nodeid": report.nodeid,
            "phase": report.when,
            "outcome": outcome(report),
            "duration_s": round(report.duration, 3),
            "markers": sorted(k for k in report.keywords if k in MARKERS),
            "detail": str(report.longrepr)[-2000:] if report.failed or report.skipped else None,
        }
        if hasattr(report, "wasxfail"):  # an expected failure's reason, not its traceback
            record["reason"] = str(report.wasxfail).removeprefix("reason: ")
        elif report.skipped and isinstance(report.longrepr, tuple):  # (file, line, "Skipped: reason")
            record["reason"] = str(report.longrepr[2]).removeprefix("Skipped: ")
        suite = declared_suite(report)
        if suite is not None:
            record["suite"] = suite
        self.run.record(record)

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        declare_suites(items)

    @pytest.hookimpl(trylast=True)  # after pytest's own: every fixture torn down, every server already stopped
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """The run summary, index entry and report. Whatever fails here (disk full, index locked) is said in the
        terminal summary, never raised: it cannot undo a teardown, and what was measured is already on disk."""
        if self.is_worker:
            return
        try:
            self._finish(exitstatus)
        except (OSError, sqlite3.Error, HarnessError) as exc:
            self.finish_error = f"{type(exc).__name__}: {exc}"
            if session.exitstatus == pytest.ExitCode.OK:  # a run without its report is no green run
                session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
        if session.exitstatus == pytest.ExitCode.OK and self.overall in UNDECIDED:
            session.exitstatus = UNDECIDED_EXIT  # nothing failed, but not everything was shown: not a green run

    def _finish(self, exitstatus: int) -> None:
        from harness.report.html import write_report
        from harness.report.rundata import load_run
        from harness.report.summary import summarise

        pool = self.config.stash.get(POOL_KEY, None)
        plans = self.config.stash[PLANS_KEY].loaded
        counts: dict[str, int] = {}
        for entry in self.run.records:
            counts[entry["outcome"]] = counts.get(entry["outcome"], 0) + 1
        platform = next(iter(plans), None)
        environment = fingerprint(platform, self.config.rootpath)
        self.summary = {
            "run_id": self.run.directory.name,
            "started": self.started,
            "finished": time.time(),
            "exit_status": int(exitstatus),
            "status": RUN_STATUS.get(int(exitstatus), "failed"),
            "outcomes": counts,
            "plans": {p: plan.source for p, plan in plans.items()},
            "plan_names": {p: plan.name for p, plan in plans.items()},
            "servers": [
                {
                    "model": s.config.served_model_name,
                    "platform": s.config.platform,
                    "startup_s": None if s.startup_s is None else round(s.startup_s, 2),
                    "log": str(s.log_path),
                }
                for s in (pool.started if pool else [])
            ],
            "server_restarts": pool.restarts if pool else [],
            "environment": environment,
        }
        self.summary_path = self.run.write_summary(self.summary)
        index = self.config.stash.get(INDEX_KEY, None)
        if index is not None:
            status = self.summary["status"]
            plan = next(iter(plans.values()), None)
            index.finish_run(self.run.directory.name, status, environment, plan.name if plan else None, platform)
        scrub_folder(self.run.directory)  # junit.xml and logs, written by others: no secret stays in the folder
        data = load_run(self.run.directory)
        summaries = summarise(data)
        self.lines = suite_lines(summaries)
        if summaries:  # a run of suites (not of the harness's own tests) has a verdict
            self.overall = overall_verdict(summaries, data.incomplete)
            undecided = f" (exit {UNDECIDED_EXIT}: no test failed, but not everything was shown)"
            why = f" ({data.incomplete})" if self.overall == "INCOMPLETE" else ""
            self.lines.append(f"overall: {self.overall}" + (undecided if self.overall in UNDECIDED else why))
            self.summary["verdict"] = self.overall  # beside `status` (how the tests ended): what the run showed
            self.run.write_summary(self.summary)
        self.report_path = write_report(data, index)
        ran = {"passed", "failed", "xfailed", "xpassed", TEST_NOT_SHOWN} & counts.keys()
        if not ran and self.summary["status"] in ("passed", "no tests"):  # every test skipped, or none collected
            kept = self.run.give_back_latest()
            self.latest_note = (
                f"this run ran no test: reports/latest still points at {kept.name}" if kept else "this run ran no test"
            )

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        problems = [p for p in (self.run.write_error, self.finish_error) if p]
        if self.summary_path is None and not problems:
            return
        terminalreporter.section("llmqual")
        for problem in problems:
            terminalreporter.write_line(
                f"the run folder could not be completed: {problem}; what was written is in {self.run.directory}",
                red=True,
            )
        if self.summary_path is None:
            return
        for server in self.summary["servers"]:
            terminalreporter.write_line(
                f"server {server['model']} ({server['platform']}): ready in {server['startup_s']} s, "
                f"log {server['log']}"
            )
        sink = self.config.stash.get(SINK_KEY, None)
        for document in sink.documents if sink else []:
            terminalreporter.write_line(case_line(document))
        for line in self.lines:
            terminalreporter.write_line(line)
        if self.summary["status"] == "interrupted":
            terminalreporter.write_line(
                f"INTERRUPTED: the run was stopped before it finished; what it measured is in {self.run.directory}",
                yellow=True,
            )
        outcomes = ", ".join(f"{n} {k}" for k, n in sorted(self.summary["outcomes"].items()))
        terminalreporter.write_line(f"outcomes: {outcomes or 'no tests recorded'}")
        terminalreporter.write_line(f"report: {self.report_path or self.summary_path.parent}")
        if self.latest_note:
            terminalreporter.write_line(self.latest_note)
