"""The llmqual pytest plugin: options, markers, platform parametrisation, the server fixtures and the run report.

Every test that asks for `target_platform` (directly or through `endpoint`) runs once per platform, each variant
marked `npu`, `gpu` or `cpu`, so `pytest suites/ -m npu` selects the NPU variants and a variant whose platform is
absent is skipped with the reason detection gave. The plan (`--plan`) names the platform it targets; variants for
other platforms skip. Servers are started by a session-wide pool keyed by configuration and stopped at the end of
the session whatever happened; `--endpoint` uses a running server instead.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sqlite3
from collections.abc import Callable, Generator, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import pytest

from harness.accuracy.plan_cases import include_folder, plan_tasks
from harness.accuracy.tasks import TaskError, check_tasks, known_tasks
from harness.bench.cases import DynamicCase, LoadSettings, StaticCase
from harness.bench.from_plan import load_settings, plan_dynamic_cases, plan_static_cases
from harness.config.ab import ABComparison
from harness.config.plan import PLATFORMS, Plan, PlatformName, load_plan
from harness.config.suites import TaskSpec
from harness.deploy.multi import Deployment, instance_configs, remote_instances, write_rank_table
from harness.diffusion.cases import DiffusionCase, plan_diffusion_cases
from harness.errors import HarnessError, PlanError
from harness.fingerprint import fingerprint
from harness.gates.baseline import foreign_baseline
from harness.load.tokens import Tokens
from harness.model.resolve import resolve_model
from harness.paths import cache_root, inside
from harness.platform.detect import detect
from harness.profile.selection import profiled
from harness.results.index import RunIndex
from harness.results.sink import CaseSink
from harness.run import Run, new_run_id
from harness.runtime.interrupt import raise_keyboard_interrupt
from harness.runtime.sweep import RUN_ENV, sweep
from harness.server.endpoint import Endpoint, connect_endpoint
from harness.server.pool import ServerPool
from harness.server.vllm import server_config
from harness.stash import INDEX_KEY, PLAN_KEY, POOL_KEY, PROGRESS_KEY, RUN_KEY, SINK_KEY, TOKENS_KEY
from harness.training.curve import TrainedRun

# Each concern's hooks and fixtures live with its code: training runs, and the run's results and report.
pytest_plugins = [
    "harness.training.fixtures",
    "harness.profile.fixtures",
    "harness.diffusion.fixtures",
    "harness.session",
]

DEFAULT_PLANS: dict[PlatformName, str] = {"cpu": "fixtures/plans/cpu-tiny.yaml"}


# Fixtures whose values are cases a plan lists: a test asking for one runs once per (platform, case).
class Case(Protocol):
    @property
    def id(self) -> str: ...


CASE_SOURCES: dict[str, Callable[[Plan], Sequence[Case]]] = {
    "static_case": plan_static_cases,
    "dynamic_case": plan_dynamic_cases,
    "accuracy_case": plan_tasks,
    "ab_comparison": lambda plan: list(plan.ab.comparisons) if plan.ab else [],
    "diffusion_case": plan_diffusion_cases,
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("llmqual", "llmqual qualification harness")
    group.addoption("--plan", default=None, help="plan file (default for cpu: fixtures/plans/cpu-tiny.yaml)")
    group.addoption("--endpoint", default=None, help="use the OpenAI-compatible server at URL instead of starting one")
    group.addoption("--api-key", default=None, help="API key for --endpoint")
    group.addoption("--served-model-name", default=None, help="model name at --endpoint (default: the only one)")
    group.addoption("--reports-dir", default="reports", help="where run folders are written (default: reports)")
    group.addoption("--max-live-servers", type=int, default=1, help="servers that may run at once (default: 1)")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    from harness.session import MARKERS, RunRecorder  # registered as a plugin first (assertion rewriting)

    for name, description in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {description}")
    plans: dict[str, Plan] = {}
    config.stash[PLAN_KEY] = plans
    if config.option.help or getattr(config.option, "markers", False):
        return  # nothing runs: no plan to check, no run folder to write
    # SIGTERM (CI cancelling, `timeout`) must run the same teardown as Ctrl-C: no server may outlive pytest.
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    if config.getoption("--plan"):
        try:  # an explicit plan is validated before collection: bad input stops everything up front
            plan = load_plan(config.getoption("--plan"))
            plan.check_runnable()
        except PlanError as exc:
            raise pytest.UsageError(str(exc)) from exc
        plans[plan.platform] = plan
        _warn_of_foreign_baseline(config, plan)
    workerinput = getattr(config, "workerinput", None)
    reports = Path(config.rootpath, config.getoption("--reports-dir"))
    run_id = workerinput["llmqual_run_id"] if workerinput else new_run_id()
    index = RunIndex(reports)
    try:
        run = Run.create(reports, run_id) if workerinput is None else Run(reports / run_id)
        if workerinput is None:
            given = next(iter(plans.values()), None)
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
    config.pluginmanager.register(RunRecorder(config, run), "llmqual-recorder")
    if workerinput is None and not config.option.xmlpath:
        config.option.xmlpath = str(run.junit_path)


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
    params = []
    for platform in PLATFORMS:
        mark = getattr(pytest.mark, platform)
        plan = _plan_for(config, platform) if _may_use_plan(config, platform) else None
        try:
            cases = CASE_SOURCES[fixture](plan) if plan is not None else []
        except PlanError as exc:  # a case the plan cannot have (e.g. a size the pipeline cannot make): before any work
            raise pytest.UsageError(str(exc)) from exc
        if not cases:
            params.append(pytest.param(platform, None, marks=mark, id=platform))
        params += [pytest.param(platform, case, marks=mark, id=f"{platform}-{case.id}") for case in cases]
    return params


def _warn_of_foreign_baseline(config: pytest.Config, plan: Plan) -> None:
    """A baseline from another device gives no verdict: say so when the plan is read, not after the run."""
    from harness.platform.devices import device_facts

    try:
        message = foreign_baseline(plan.baseline_path(), plan.platform, device_facts(plan.platform).get("device"))
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from exc
    if message is not None:
        config.issue_config_time_warning(pytest.PytestConfigWarning(message), stacklevel=2)


def _may_use_plan(config: pytest.Config, platform: PlatformName) -> bool:
    return platform in config.stash[PLAN_KEY] or (not config.getoption("--plan") and platform in DEFAULT_PLANS)


def _plan_for(config: pytest.Config, platform: PlatformName) -> Plan | None:
    """The plan for `platform`: the one given with --plan, or the platform's default plan, else None."""
    plans = config.stash[PLAN_KEY]
    if platform not in plans and not config.getoption("--plan") and platform in DEFAULT_PLANS:
        try:
            plan = load_plan(config.rootpath / DEFAULT_PLANS[platform])
            plan.check_runnable()
        except PlanError as exc:
            raise pytest.UsageError(str(exc)) from exc
        plans[platform] = plan
        _warn_of_foreign_baseline(config, plan)
    return plans.get(platform)


@pytest.fixture
def target_platform(request: pytest.FixtureRequest) -> PlatformName:
    """The platform of this variant; skips when it is absent here or when the plan targets another."""
    platform: PlatformName = request.param
    config = request.config
    if not config.getoption("--endpoint"):
        found = detect(platform)
        if not found.available:
            pytest.skip(found.reason)
    given = config.stash[PLAN_KEY]
    if config.getoption("--plan") and platform not in given:
        only = next(iter(given.values()))
        pytest.skip(f"the plan {only.source} targets {only.platform}, not {platform}")
    if _plan_for(config, platform) is None:
        pytest.fail(f"{platform} is available but no plan was given: pass --plan fixtures/plans/<name>.yaml")
    return platform


def _case(request: pytest.FixtureRequest, section: str) -> Any:
    if request.param is None:
        pytest.skip(f"the plan for this platform has no suites.{section} cases")
    return request.param


@pytest.fixture
def static_case(request: pytest.FixtureRequest, target_platform: PlatformName) -> StaticCase:
    """One case of the plan's static suite."""
    case: StaticCase = _case(request, "static")
    return case


@pytest.fixture
def dynamic_case(request: pytest.FixtureRequest, target_platform: PlatformName) -> DynamicCase:
    """One case of the plan's dynamic suite."""
    case: DynamicCase = _case(request, "dynamic")
    return case


@pytest.fixture
def ab_comparison(request: pytest.FixtureRequest, target_platform: PlatformName) -> ABComparison:
    """One comparison of the plan's A/B section."""
    case: ABComparison = _case(request, "ab")
    return case


@pytest.fixture
def diffusion_case(request: pytest.FixtureRequest, target_platform: PlatformName) -> DiffusionCase:
    """One resolution x steps x batch case of the plan's diffusion suite."""
    case: DiffusionCase = _case(request, "diffusion")
    return case


@pytest.fixture
def accuracy_case(request: pytest.FixtureRequest, target_platform: PlatformName) -> TaskSpec:
    """One task of the plan's accuracy suite."""
    case: TaskSpec = _case(request, "accuracy")
    return case


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Check the selected accuracy tasks exist (before any server starts) and put server-hungry tests last."""
    checked: set[str] = set()
    for item in items:
        params = getattr(item, "callspec", None)
        task = params.params.get("accuracy_case") if params else None
        if not isinstance(task, TaskSpec) or params is None:
            continue
        plan = _plan_for(config, params.params["target_platform"])
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


@pytest.fixture
def plan(request: pytest.FixtureRequest, target_platform: PlatformName) -> Plan:
    """The validated plan for this test's platform."""
    found = _plan_for(request.config, target_platform)
    assert found is not None  # target_platform has failed the test otherwise
    return found


@pytest.fixture(scope="session")
def llmqual_run(request: pytest.FixtureRequest) -> Run:
    """This run's output folder."""
    return request.config.stash[RUN_KEY]


@pytest.fixture(scope="session")
def model_cache(request: pytest.FixtureRequest) -> Path:
    """The project's cache folder (models, engine caches)."""
    return cache_root(request.config.rootpath)


@pytest.fixture(scope="session")
def server_pool(request: pytest.FixtureRequest, llmqual_run: Run) -> Iterator[ServerPool]:
    """Every server the session starts; all are stopped when the session ends, however it ends."""
    leases = cache_root(request.config.rootpath) / "leases"  # shared by every run and xdist worker on this host
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # its servers' logs must not mix with another worker's
    pool = ServerPool(
        llmqual_run.log_dir,
        request.config.getoption("--max-live-servers"),
        lease_dir=leases,
        log_prefix=f"{worker}-" if worker else "",
    )
    request.config.stash[POOL_KEY] = pool
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
def endpoint(request: pytest.FixtureRequest, plan: Plan, model_cache: Path) -> Endpoint:
    """The served model for this test: a pooled vLLM server for the plan, or the --endpoint server."""
    config = request.config
    url = config.getoption("--endpoint")
    if url:
        try:
            return connect_endpoint(url, config.getoption("--api-key"), config.getoption("--served-model-name"))
        except HarnessError as exc:
            pytest.fail(str(exc), pytrace=False)
    if plan.deployment is not None:  # the deployment's instances behind its request proxy
        deployment: Deployment = request.getfixturevalue("deployment")
        return deployment.endpoint
    pool: ServerPool = request.getfixturevalue("server_pool")
    server = server_config(plan, request.getfixturevalue("served_model"), model_cache)
    return pool.get(profiled(config, plan, server, config.stash[RUN_KEY])).endpoint


@pytest.fixture
def served_model(request: pytest.FixtureRequest, plan: Plan, model_cache: Path) -> Path:
    """The model folder the plan's server loads: the checkpoint of the session's training run when the plan serves
    an external launcher's (LLaMA-Factory's) checkpoint (the run trains first if no test has asked for it yet),
    else `resolve_model` (the base model, or the cached tiny training run's checkpoint)."""
    if not plan.serves_external_training:
        return resolve_model(plan, model_cache)
    run: TrainedRun = request.getfixturevalue("trained_run")
    if run.checkpoint is None or not (run.checkpoint / "config.json").is_file():
        pytest.fail(f"the {run.launcher} run left no checkpoint to serve in {run.checkpoint}", pytrace=False)
    return run.checkpoint


@pytest.fixture
def tokenizer_path(request: pytest.FixtureRequest, plan: Plan) -> Path:
    """The served model's tokenizer folder: the plan's model.tokenizer, else the model folder."""
    if plan.model.tokenizer:
        return plan.relative(plan.model.tokenizer)
    folder: Path = request.getfixturevalue("served_model")
    return folder


@pytest.fixture
def served_tokens(request: pytest.FixtureRequest, tokenizer_path: Path) -> Tokens:
    """The served model's tokenizer, loaded once per session."""
    loaded = request.config.stash.setdefault(TOKENS_KEY, {})
    folder = tokenizer_path
    if folder not in loaded:
        loaded[folder] = Tokens.load(folder)
    return loaded[folder]


@pytest.fixture
def lm_eval_include(plan: Plan, model_cache: Path) -> Path | None:
    """The plan's lm-eval task folder with absolute data paths (what lm-eval and its CLI are given)."""
    return include_folder(plan, model_cache)


@pytest.fixture
def serve(request: pytest.FixtureRequest, plan: Plan, model_cache: Path) -> Callable[[Plan], Endpoint]:
    """Start (or reuse) a server for another configuration of a plan; not available with --endpoint. The plan's
    own server keeps running beside it (it is needed again after the variant, and an idle one costs ~1% of a core)."""
    if request.config.getoption("--endpoint"):
        pytest.skip("this test starts its own server configurations; it cannot run against --endpoint")
    pool: ServerPool = request.getfixturevalue("server_pool")
    model: Path = request.getfixturevalue("served_model")  # a variant changes the server section, not the model
    own = server_config(plan, model, model_cache)

    def start(variant: Plan) -> Endpoint:
        config = server_config(variant, model, model_cache)
        return pool.get(config, alongside=own).endpoint

    return start


@pytest.fixture(scope="session")
def deployments(request: pytest.FixtureRequest, llmqual_run: Run) -> Iterator[dict[str, Deployment]]:
    """Multi-instance deployments started in this session, by plan; all stopped at the end, however it ends."""
    running: dict[str, Deployment] = {}
    try:
        yield running
    finally:
        for deployment in running.values():
            deployment.stop()


@pytest.fixture
def deployment(plan: Plan, model_cache: Path, llmqual_run: Run, deployments: dict[str, Deployment]) -> Deployment:
    """The plan's prefill/decode instances, started together once per session: node 0's here (with their rank
    table on NPU), the other nodes' waited for (they run `llmqual deploy up --plan F --node N`), and the request
    proxy in front of all of them."""
    if plan.deployment is None:
        pytest.skip("the plan has no deployment section")
    if plan.source not in deployments:
        folder = inside(llmqual_run.log_dir, f"deployment-{plan.name}")
        table = write_rank_table(plan, folder) if plan.platform == "npu" else None
        configs = instance_configs(plan, resolve_model(plan, model_cache), model_cache, table)
        leases = model_cache / "leases"
        remotes = remote_instances(plan, node=0)  # other nodes run theirs with `llmqual deploy up --node N`
        timeout = plan.deployment.remote_ready_timeout_s
        deployment = Deployment(
            configs, folder, lease_dir=leases, proxied=True, remotes=remotes, remote_timeout_s=timeout
        )
        deployments[plan.source] = deployment.__enter__()
    return deployments[plan.source]


@pytest.fixture
def load(request: pytest.FixtureRequest, plan: Plan) -> LoadSettings:
    """How the plan's serving cases send their requests; long cases report progress on the terminal."""
    from harness.session import TerminalProgress

    if PROGRESS_KEY not in request.config.stash:
        printer: Callable[[str, int, int], None] = TerminalProgress(request.config)
        request.config.stash[PROGRESS_KEY] = printer
    progress = request.config.stash[PROGRESS_KEY]
    return dataclasses.replace(load_settings(plan), progress=progress)


@pytest.fixture(scope="session")
def case_sink(request: pytest.FixtureRequest, llmqual_run: Run) -> CaseSink:
    """Writes each case's result document and CSV rows into the run folder as the case finishes."""
    plans: dict[str, Plan] = request.config.stash[PLAN_KEY]
    platform = next(iter(plans), None)
    root = request.config.rootpath
    sink = CaseSink.for_run(llmqual_run.directory, fingerprint(platform, root), lambda p: fingerprint(p, root))
    request.config.stash[SINK_KEY] = sink
    return sink


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    pool = item.config.stash.get(POOL_KEY, None)
    if report.failed and pool is not None and "endpoint" in getattr(item, "fixturenames", ()):
        for server in pool.started[-1:]:
            report.sections.append((f"vLLM server log tail ({server.log_path})", server.log_tail()))
    return report
