"""Which case a run profiles (pytest's --profile, else the plan's suites.profile.case), checked against the plan, and
the plan's server started with its profiler when one is profiled. Imported by the servers plugin, so kept apart from
the fixtures module pytest registers as a plugin."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.bench.from_plan import plan_dynamic_cases, plan_static_cases
from harness.config.plan import Plan
from harness.profile.capture import with_profiler
from harness.run import Run
from harness.server.vllm import ServerConfig


def wanted_case(config: pytest.Config, plan: Plan) -> str | None:
    """The case this run profiles on `plan`'s server, or None."""
    given: str | None = config.getoption("--profile", None)
    return given or plan.suites.profile.case


def plan_case_ids(plan: Plan) -> list[str]:
    return [c.id for c in plan_static_cases(plan)] + [c.id for c in plan_dynamic_cases(plan)]


def check_profile_case(config: pytest.Config, plan: Plan) -> None:
    """A profile asked for a case the plan does not have stops the session before anything starts."""
    case = wanted_case(config, plan)
    if case is not None and case not in plan_case_ids(plan):
        source = "--profile" if config.getoption("--profile", None) else f"{plan.source}: suites.profile.case"
        known = ", ".join(plan_case_ids(plan)) or "none (no static or dynamic cases)"
        raise pytest.UsageError(f"{source} {case!r}: the plan {plan.name} has no such case; its cases: {known}")


def trace_dir(run: Run) -> Path:
    return run.directory / "profiles" / "server"


def profiled(config: pytest.Config, plan: Plan, server: ServerConfig, run: Run) -> ServerConfig:
    """The plan's server, with its profiler on when this run profiles one of its cases."""
    return server if wanted_case(config, plan) is None else with_profiler(server, trace_dir(run))
