"""pytest side of profiles on demand: `--profile CASE` (or the plan's `suites.profile.case`).

When a run profiles a case, the plan's server is started with its profiler (harness.profile.capture), and after
the case's measured repeats one more window of the same workload runs with the profiler on: its numbers are not
the case's (the profiler slows the server), its traces land in `<run>/profiles/<case>/` and its top operators by
self time in the report. A case the plan does not have is refused when the session starts, before any server.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from harness.config.plan import Plan
from harness.plugins.stash import PLANS_KEY
from harness.profile.capture import capture
from harness.profile.selection import check_profile_case, trace_dir, wanted_case
from harness.results.case import CaseResult
from harness.run import Run
from harness.server.endpoint import Endpoint


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("llmqual").addoption(
        "--profile", default=None, metavar="CASE", help="profile the server around this serving case (its id)"
    )


def pytest_collection_modifyitems(config: pytest.Config) -> None:
    """Every plan of the session is loaded once its tests are parametrised: check the profiled case now."""
    for plan in config.stash[PLANS_KEY].loaded.values() if PLANS_KEY in config.stash else ():
        check_profile_case(config, plan)


class Profiler:
    """`profiler(case_id, endpoint, work)`: the profile of `work()` as a case result when this run profiles
    `case_id`, else None (and `work` is not run)."""

    def __init__(self, config: pytest.Config, plan: Plan, run: Run) -> None:
        self.case, self.top, self.run = wanted_case(config, plan), plan.suites.profile.top, run
        self.workers = plan.server.tensor_parallel_size * plan.server.pipeline_parallel_size

    def __call__(self, case_id: str, endpoint: Endpoint, work: Callable[[], object]) -> CaseResult | None:
        if case_id != self.case:
            return None
        out = self.run.directory / "profiles" / case_id
        found = capture(endpoint, trace_dir(self.run), out, work, self.top, expected=self.workers)
        return CaseResult(
            suite="profile",
            case_id=case_id,
            config={"folder": str(out.relative_to(self.run.directory)), "top_n": self.top},
            metrics={"profiled_s": round(found.seconds, 3), "trace_files": len(found.files)},
            checks={
                "files": [str(f.relative_to(self.run.directory)) for f in found.files],
                "top_operators": [op.as_json() for op in found.top],
            },
        )


@pytest.fixture
def profiler(request: pytest.FixtureRequest, plan: Plan, llmqual_run: Run) -> Profiler:
    return Profiler(request.config, plan, llmqual_run)
