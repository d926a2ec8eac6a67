"""The run's results as a pytest plugin: markers, each case recorded and gated as it finishes, each test's outcome
appended to the run folder, and at the end the run summary, the index entry, the report and the terminal summary.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.config.plan import Plan
from harness.errors import HarnessError
from harness.fingerprint import fingerprint
from harness.gates.baseline import RunBaseline, judge, load_baseline
from harness.gates.gate import GatePolicy, overall
from harness.report.summary import suite_lines
from harness.results.case import CaseResult
from harness.results.sink import CaseSink, case_line
from harness.run import Run
from harness.secrets import scrub_folder
from harness.stash import INDEX_KEY, PLAN_KEY, POOL_KEY, SINK_KEY

MARKERS = {
    "npu": "runs on Ascend NPUs (skipped with the reason when none is found)",
    "gpu": "runs on NVIDIA GPUs (skipped with the reason when none is found)",
    "cpu": "runs on the CPU with vLLM's CPU build: the embedded default",
    "smoke": "serving smoke checks: the server answers the OpenAI API correctly",
    "serving": "serving performance suites (static and dynamic benchmarks)",
    "accuracy": "accuracy suites (lm-eval through the served model)",
    "training": "training convergence suites",
    "preflight": "checks of a node before a run",
    "integration": "the harness's own tests that start real engines (slow)",
    "disaggregated": "prefill/decode deployments: KV really transferred, answers as a single instance's",
    "ab": "A/B comparisons of server configurations measured in the same run (the plan's ab: section)",
    "capacity": "capacity questions answered by measurement: longest context per card count, highest rate within SLOs",
    "quant": "accuracy of quantised server configurations (starts extra servers; runs last)",
    "diffusion": "text-to-image latency per image and images/s (diffusers' pipeline, or a ComfyUI server)",
    "platforms": "platforms(*names): only these platform variants exist (e.g. preflight: npu)",
}

BASELINES_KEY = pytest.StashKey[dict[str, RunBaseline | None]]()


class TerminalProgress:
    """Progress of long cases on the terminal, through pytest's capture: at most one line per `every_s`."""

    def __init__(self, config: pytest.Config, every_s: float = 15.0, clock: Callable[[], float] = time.monotonic):
        self.config, self.every_s, self.clock = config, every_s, clock
        self.started: dict[str, float] = {}
        self.last = clock()

    def __call__(self, case_id: str, done: int, total: int) -> None:
        now = self.clock()
        if done == 1 or case_id not in self.started:  # a measurement (or a repeat) begins
            self.started[case_id] = now
        started = self.started[case_id]
        if now - self.last < self.every_s:
            return
        self.last = now
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        if reporter is None or capture is None:
            return
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"  ... {case_id}: {done}/{total} requests in {now - started:.0f} s")


class RecordCase:
    """Gate a case against the plan's baseline, write it (JSON, CSV rows, index) at once, then enforce the gate.

    `record_case(result, csv_kind=None)` returns the written document. A failed gate fails the test only after
    the result is on disk, and only when the plan's `gates.enforce` is on. `record_case.progress(result)` writes a
    case still being measured (a `partial` document, no CSV row, no verdict), so stopping mid-case loses nothing
    already measured; the whole case replaces it.
    """

    def __init__(self, request: pytest.FixtureRequest, plan: Plan, sink: CaseSink, run: Run) -> None:
        self.request, self.plan, self.sink, self.run = request, plan, sink, run
        baselines = request.config.stash.setdefault(BASELINES_KEY, {})
        if plan.source not in baselines:
            baselines[plan.source] = load_baseline(plan.baseline_path())
        self.baseline = baselines[plan.source]

    def _index(self, document: dict[str, Any], path: Path, outcome: str | None) -> None:
        index = self.request.config.stash.get(INDEX_KEY, None)
        if index is not None:
            index.record_case(self.run.directory.name, document, path, outcome)

    def progress(self, result: CaseResult) -> None:
        result.test = self.request.node.nodeid
        document, path = self.sink.write_partial(result, self.plan.platform)
        self._index(document, path, None)

    def __call__(self, result: CaseResult, csv_kind: str | None = None) -> dict[str, Any]:
        plan, node = self.plan, self.request.node
        result.test = node.nodeid
        shape = {"suite": result.suite, "case_id": result.case_id, "metrics": result.metrics, "repeats": result.repeats}
        device = self.sink.environment_for(plan.platform).get("device")
        verdicts = judge(shape, self.baseline, policy_of(plan), plan.platform, device)
        # A suite may bring its own verdicts (accuracy); these are enforced only as the plan says.
        result.gates = result.gates + [v.as_json() | {"enforced": plan.gates.enforce} for v in verdicts]
        document = self.sink.write(result, csv_kind, plan.platform)
        self._index(document, self.sink.written[-1], overall(verdicts))
        for verdict in verdicts:  # shown in junit.xml as the test's properties
            node.user_properties.append((f"gate {result.case_id} {verdict.metric}", verdict.outcome))
        failed = [v.message for v in verdicts if v.outcome == "fail"]
        if failed and plan.gates.enforce:
            pytest.fail("regression against the baseline:\n" + "\n".join(failed), pytrace=False)
        return document


def policy_of(plan: Plan) -> GatePolicy:
    return plan.gates.policy()


@pytest.fixture
def record_case(request: pytest.FixtureRequest, plan: Plan, case_sink: CaseSink, llmqual_run: Run) -> RecordCase:
    """Records cases as they are measured (RecordCase)."""
    return RecordCase(request, plan, case_sink, llmqual_run)


@pytest.fixture
def repeats(plan: Plan) -> int:
    """How many times each serving case is measured (the plan's gates.repeats)."""
    return plan.gates.repeats


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
        self.finish_error: str | None = None

    @property
    def is_worker(self) -> bool:
        """A pytest-xdist worker: the controller sees every worker's reports again and records them once."""
        return getattr(self.config, "workerinput", None) is not None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.is_worker or (report.when != "call" and not (report.failed or report.skipped)):
            return
        self.run.record(
            {
                "nodeid": report.nodeid,
                "phase": report.when,
                "outcome": report.outcome,
                "duration_s": round(report.duration, 3),
                "markers": sorted(k for k in report.keywords if k in MARKERS),
                "detail": str(report.longrepr)[-2000:] if report.failed or report.skipped else None,
            }
        )

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

    def _finish(self, exitstatus: int) -> None:
        from harness.report.html import write_report
        from harness.report.rundata import load_run
        from harness.report.summary import summarise

        pool = self.config.stash.get(POOL_KEY, None)
        plans = self.config.stash[PLAN_KEY]
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
            status = {0: "passed", 2: "interrupted", 5: "no tests"}.get(int(exitstatus), "failed")
            plan = next(iter(plans.values()), None)
            index.finish_run(self.run.directory.name, status, environment, plan.name if plan else None, platform)
        scrub_folder(self.run.directory)  # junit.xml and logs, written by others: no secret stays in the folder
        data = load_run(self.run.directory)
        self.lines = suite_lines(summarise(data))
        self.report_path = write_report(data, index)

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
        outcomes = ", ".join(f"{n} {k}" for k, n in sorted(self.summary["outcomes"].items()))
        terminalreporter.write_line(f"outcomes: {outcomes or 'no tests recorded'}")
        terminalreporter.write_line(f"report: {self.report_path or self.summary_path.parent}")
