"""Plans as pytest sees them: every test that asks for `target_platform` (directly or through a case, `plan` or
`endpoint`) runs once per platform, each variant marked `npu`, `gpu` or `cpu`, so `pytest suites/ -m npu` selects
the NPU variants. A variant whose platform is absent skips with the reason detection gave; one whose platform the
plan does not target skips saying so. A test asking for a case fixture (`static_case`, ...) runs once per
(platform, case) the platform's plan lists. The selected accuracy tasks are checked before any server starts, and
tests are ordered so the plan's own server starts once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import pytest

from harness.accuracy.plan_cases import include_folder, plan_tasks
from harness.accuracy.tasks import TaskError, check_tasks, known_tasks
from harness.bench.from_plan import plan_dynamic_cases, plan_static_cases
from harness.config.plan import PLATFORMS, Plan, PlatformName
from harness.config.plans import Plans
from harness.config.suites import TaskSpec
from harness.diffusion.cases import plan_diffusion_cases
from harness.errors import HarnessError, PlanError
from harness.paths import cache_root
from harness.platform.detect import detect
from harness.plugins.markers import not_shown
from harness.plugins.stash import PLANS_KEY
from harness.results.baseline import foreign_baseline


class Case(Protocol):
    @property
    def id(self) -> str: ...


# Fixtures whose values are cases a plan lists: a test asking for one runs once per (platform, case).
CASE_SOURCES: dict[str, Callable[[Plan], Sequence[Case]]] = {
    "static_case": plan_static_cases,
    "dynamic_case": plan_dynamic_cases,
    "accuracy_case": plan_tasks,
    "ab_comparison": lambda plan: list(plan.ab.comparisons) if plan.ab else [],
    "diffusion_case": plan_diffusion_cases,
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("llmqual").addoption(
        "--plan", default=None, help="plan file (default for cpu: fixtures/plans/cpu-tiny.yaml)"
    )


def configure_plans(config: pytest.Config) -> Plans:
    """The session's Plans, in the stash; an explicit plan is validated now, before collection."""

    def warn_of_foreign_baseline(plan: Plan) -> None:
        """A baseline from another device gives no verdict: say so when the plan is read, not after the run."""
        from harness.platform.devices import device_facts

        message = foreign_baseline(plan.baseline_path(), plan.platform, device_facts(plan.platform).get("device"))
        if message is not None:
            config.issue_config_time_warning(pytest.PytestConfigWarning(message), stacklevel=2)

    try:
        plans = Plans.from_option(
            config.rootpath,
            config.getoption("--plan"),
            on_load=warn_of_foreign_baseline,
            runs_here=lambda platform: bool(config.getoption("--endpoint")) or detect(platform).available,
        )
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from exc
    config.stash[PLANS_KEY] = plans
    return plans


def plan_for(config: pytest.Config, platform: PlatformName) -> Plan | None:
    """The plan for `platform`, loading its default plan the first time; a plan that cannot run stops the run."""
    try:
        return config.stash[PLANS_KEY].for_platform(platform)
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from exc


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    case_fixture = next((name for name in CASE_SOURCES if name in metafunc.fixturenames), None)
    if case_fixture is not None:
        metafunc.parametrize(
            ("target_platform", case_fixture), _case_params(metafunc.config, case_fixture), indirect=True
        )
    elif "target_platform" in metafunc.fixturenames:
        only = metafunc.definition.get_closest_marker("platforms")
        allowed = only.args if only else PLATFORMS
        params = [pytest.param(p, marks=getattr(pytest.mark, p), id=p) for p in PLATFORMS if p in allowed]
        metafunc.parametrize("target_platform", params, indirect=True)


def _case_params(config: pytest.Config, fixture: str) -> list[Any]:
    """(platform, case) pairs from each platform's plan; a platform without plan or cases gets one placeholder
    that skips with the reason."""
    plans = config.stash[PLANS_KEY]
    params = []
    for platform in PLATFORMS:
        mark = getattr(pytest.mark, platform)
        plan = plan_for(config, platform) if plans.applies(platform) else None
        try:
            cases = CASE_SOURCES[fixture](plan) if plan is not None else []
        except PlanError as exc:  # a case the plan cannot have (e.g. a size the pipeline cannot make): before any work
            raise pytest.UsageError(str(exc)) from exc
        if not cases:
            params.append(pytest.param(platform, None, marks=mark, id=platform))
        params += [pytest.param(platform, case, marks=mark, id=f"{platform}-{case.id}") for case in cases]
    return params


@pytest.fixture
def target_platform(request: pytest.FixtureRequest) -> PlatformName:
    """The platform of this variant; skips when it is absent here or when the plan targets another."""
    platform: PlatformName = request.param
    config = request.config
    if not config.getoption("--endpoint"):
        found = detect(platform)
        if not found.available:
            pytest.skip(found.reason)
    reason = config.stash[PLANS_KEY].skip_reason(platform)
    if reason is not None:
        pytest.skip(reason)
    found_plan = plan_for(config, platform)
    if found_plan is None:
        pytest.fail(f"{platform} is available but no plan was given: pass --plan fixtures/plans/<name>.yaml")
    if found_plan.container is not None and not config.getoption("--endpoint"):
        problem = _docker_problem(config)
        if problem is not None:
            not_shown(request, f"the plan serves in a container and {problem}")
    return platform


_DOCKER_KEY = pytest.StashKey[str | None]()


def _docker_problem(config: pytest.Config) -> str | None:
    """Why no container can start here (asked once per session), or None."""
    if _DOCKER_KEY not in config.stash:
        from harness.runtime.container import docker_problem

        config.stash[_DOCKER_KEY] = docker_problem()
    return config.stash[_DOCKER_KEY]


@pytest.fixture
def plan(request: pytest.FixtureRequest, target_platform: PlatformName) -> Plan:
    """The validated plan for this test's platform."""
    found = plan_for(request.config, target_platform)
    assert found is not None  # target_platform has failed the test otherwise
    return found


def _case_fixture(name: str, key: str, what: str) -> Any:
    """The fixture `name` of CASE_SOURCES: the case of this variant, or a skip naming the plan key it comes from."""

    def case(request: pytest.FixtureRequest, target_platform: PlatformName) -> Any:
        if request.param is None:
            pytest.skip(f"the plan for this platform has no {key}")
        return request.param

    case.__doc__ = what
    return pytest.fixture(name=name)(case)


static_case = _case_fixture("static_case", "suites.static section", "One case of the static suite (a StaticCase).")
dynamic_case = _case_fixture("dynamic_case", "suites.dynamic section", "One case of the dynamic suite (a DynamicCase).")
ab_comparison = _case_fixture("ab_comparison", "ab.comparisons", "One comparison of the A/B section (an ABComparison).")
diffusion_case = _case_fixture(
    "diffusion_case",
    "suites.diffusion section",
    "One resolution x steps x batch case of the plan's diffusion suite (a DiffusionCase).",
)
accuracy_case = _case_fixture("accuracy_case", "suites.accuracy.tasks", "One task of the accuracy suite (a TaskSpec).")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Check the selected accuracy tasks exist (before any server starts) and put server-hungry tests last."""
    checked: set[str] = set()
    for item in items:
        params = getattr(item, "callspec", None)
        task = params.params.get("accuracy_case") if params else None
        if not isinstance(task, TaskSpec) or params is None:
            continue
        plan = plan_for(config, params.params["target_platform"])
        if plan is None or plan.source in checked:
            continue
        checked.add(plan.source)
        names = [t.name for t in plan_tasks(plan)]
        if plan.suites.quant:
            names += [t.name for t in plan.suites.quant.tasks]
        include = include_folder(plan, cache_root(config.rootpath))
        try:
            if include is None or set(names) - set(known_tasks(include, defaults=False)):
                check_tasks(names, known_tasks(include), plan.source)
        except TaskError as exc:
            raise pytest.UsageError(str(exc)) from exc
    items.sort(key=_run_order)


def _run_order(item: pytest.Item) -> int:
    """Performance first, on a fresh server and a quiet client process (lm-eval, run in-process, leaves worker
    threads that disturb the client's timing), the A/B comparisons after the plan's own cases (they start their
    candidates beside it); then accuracy; last training and the quantisation comparison, which start other server
    configurations, so the plan's own server starts once."""
    if item.get_closest_marker("quant") or item.get_closest_marker("training"):
        return 3
    if item.get_closest_marker("accuracy"):
        return 2
    return 1 if item.get_closest_marker("ab") else 0
