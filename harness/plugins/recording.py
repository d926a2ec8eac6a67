"""The run folder and the cases in it: the run's folder, index entry and junit path are made when the session is
configured; each case is gated against the plan's baseline and written (JSON, CSV rows, index) as it finishes,
before its gate can fail the test, so nothing measured is lost.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.config.plan import Plan
from harness.config.plans import Plans
from harness.errors import HarnessError
from harness.fingerprint import fingerprint
from harness.gates.gate import GatePolicy
from harness.gates.verdict import overall
from harness.plugins.stash import INDEX_KEY, PLANS_KEY, RUN_KEY, SINK_KEY
from harness.results.baseline import RunBaseline, judge, load_baseline
from harness.results.case import CaseResult
from harness.results.index import RunIndex
from harness.results.sink import CaseSink
from harness.run import Run, new_run_id
from harness.runtime.sweep import RUN_ENV, sweep

BASELINES_KEY = pytest.StashKey[dict[str, RunBaseline | None]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("llmqual").addoption(
        "--reports-dir", default="reports", help="where run folders are written (default: reports)"
    )


def open_run(config: pytest.Config, plans: Plans) -> Run:
    """This session's run folder and index entry (an xdist worker joins its controller's run); on the controller,
    leftovers of runs that died are stopped first and junit.xml goes into the folder."""
    workerinput = getattr(config, "workerinput", None)
    reports = Path(config.rootpath, config.getoption("--reports-dir"))
    run_id = workerinput["llmqual_run_id"] if workerinput else new_run_id()
    index = RunIndex(reports)
    try:
        run = Run.create(reports, run_id) if workerinput is None else Run(reports / run_id)
        if workerinput is None:
            given = plans.given
            index.start_run(run_id, run.directory, given.name if given else None, given.platform if given else None)
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from exc
    except sqlite3.Error as exc:
        raise pytest.UsageError(
            f"the run index {index.path} cannot be written ({exc}); move it aside or pass another --reports-dir"
        ) from exc
    config.stash[RUN_KEY] = run
    config.stash[INDEX_KEY] = index
    os.environ[RUN_ENV] = run_id  # every process and container this run starts carries it
    if workerinput is None:
        _sweep_leftovers(config)
        if not config.option.xmlpath:
            config.option.xmlpath = str(run.junit_path)
    return run


def _sweep_leftovers(config: pytest.Config) -> None:
    """Stop what runs killed outright left (servers, containers, training), before this run leases any card."""
    stopped = sweep()
    if stopped:
        lines = "\n  ".join(stopped)
        config.issue_config_time_warning(
            pytest.PytestWarning(f"stopped {len(stopped)} leftover(s) of earlier runs that died:\n  {lines}"),
            stacklevel=2,
        )


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist: workers write into the controller's run folder."""
    run = node.config.stash.get(RUN_KEY, None)
    if run is not None:
        node.workerinput["llmqual_run_id"] = run.directory.name


@pytest.fixture(scope="session")
def llmqual_run(request: pytest.FixtureRequest) -> Run:
    """This run's output folder."""
    return request.config.stash[RUN_KEY]


@pytest.fixture(scope="session")
def case_sink(request: pytest.FixtureRequest, llmqual_run: Run) -> CaseSink:
    """Writes each case's result document and CSV rows into the run folder as the case finishes."""
    first = request.config.stash[PLANS_KEY].first
    root = request.config.rootpath
    platform = first.platform if first else None
    sink = CaseSink.for_run(llmqual_run.directory, fingerprint(platform, root), lambda p: fingerprint(p, root))
    request.config.stash[SINK_KEY] = sink
    return sink


class RecordCase:
    """Gate a case against the plan's baseline, write it (JSON, CSV rows, index) at once, then enforce the gate.

    `record_case(result, csv_kind=None)` returns the written document. A failed gate fails the test only after
    the result is on disk, and only when the plan's `gates.enforce` is on. `record_case.progress(result)` writes a
    case still being measured (a `partial` document, no CSV row, no verdict), so stopping mid-case loses nothing
    already measured; the whole case replaces it.

    A verdict set on a result after it was written never reaches the report: `unwritten()` names every recorded
    case whose checks, gates or validity changed since, and the fixture fails the test with it.
    """

    def __init__(self, request: pytest.FixtureRequest, plan: Plan, sink: CaseSink, run: Run) -> None:
        self.request, self.plan, self.sink, self.run = request, plan, sink, run
        self.recorded: list[tuple[CaseResult, str]] = []
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
        self.recorded.append((result, _verdict_state(result)))
        self._index(document, self.sink.written[-1], overall(verdicts))
        for verdict in verdicts:  # shown in junit.xml as the test's properties
            node.user_properties.append((f"gate {result.case_id} {verdict.metric}", verdict.outcome))
        failed = [v.message for v in verdicts if v.outcome == "fail"]
        if failed and plan.gates.enforce:
            pytest.fail("regression against the baseline:\n" + "\n".join(failed), pytrace=False)
        return document

    def unwritten(self) -> list[str]:
        """The recorded cases changed after they were written, each with what changed."""
        late = []
        for result, written in self.recorded:
            changed = _changes(json.loads(written), json.loads(_verdict_state(result)))
            if changed:
                late.append(f"{result.suite} {result.case_id}: {', '.join(changed)}")
        return late


def _changes(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    changed = []
    for part, value in now.items():
        old = before[part]
        if isinstance(value, dict) and isinstance(old, dict):
            changed += [f"{part}.{key}" for key in sorted(old.keys() | value.keys()) if old.get(key) != value.get(key)]
        elif old != value:
            changed.append(part)
    return changed


def _verdict_state(result: CaseResult) -> str:
    """What a reader judges a case by, as written: its checks, gates and validity."""
    state = {"checks": result.checks, "gates": result.gates, "valid": [result.valid, result.invalid_reasons]}
    return json.dumps(state, sort_keys=True, default=str)


def policy_of(plan: Plan) -> GatePolicy:
    return plan.gates.policy()


@pytest.fixture
def record_case(
    request: pytest.FixtureRequest, plan: Plan, case_sink: CaseSink, llmqual_run: Run
) -> Iterator[RecordCase]:
    """Records cases as they are measured (RecordCase); fails the test if a verdict was set after its case was
    written (it would be missing from the case file, cases.json and the report)."""
    recorder = RecordCase(request, plan, case_sink, llmqual_run)
    yield recorder
    late = recorder.unwritten()
    if late:
        pytest.fail(
            "a verdict was set after its case was written, so the report lacks it; call record_case after the "
            "checks:\n  " + "\n  ".join(late),
            pytrace=False,
        )


@pytest.fixture
def repeats(plan: Plan) -> int:
    """How many times each serving case is measured (the plan's gates.repeats)."""
    return plan.gates.repeats
