"""The served model for a test: a vLLM server from the session's pool (started once per configuration and stopped
when the session ends, however it ends), a prefill/decode deployment, or the running server `--endpoint` names;
and the served model's folder and tokenizer.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any, NoReturn

import pytest

from harness.accuracy.plan_cases import include_folder
from harness.config.plan import Plan
from harness.deploy.multi import Deployment, instance_configs, remote_instances, write_rank_table
from harness.errors import HarnessError
from harness.load.tokens import Tokens
from harness.metrics.telemetry import Sampler, reader_for
from harness.paths import cache_root, inside
from harness.plugins.stash import POOL_KEY, RUN_KEY, TOKENS_KEY
from harness.profile.selection import profiled
from harness.run import Run
from harness.served import resolve_model, serving_config
from harness.server.endpoint import Endpoint, connect_endpoint
from harness.server.pool import ServerPool
from harness.server.vllm import VLLMServer
from harness.training.curve import TrainedRun


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("llmqual")
    group.addoption("--endpoint", default=None, help="use the OpenAI-compatible server at URL instead of starting one")
    group.addoption("--api-key", default=None, help="API key for --endpoint")
    group.addoption("--served-model-name", default=None, help="model name at --endpoint (default: the only one)")
    group.addoption("--max-live-servers", type=int, default=1, help="servers that may run at once (default: 1)")


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
            _stop_session(request, f"--endpoint {url} does not serve: {exc}")
    if plan.deployment is not None:  # the deployment's instances behind its request proxy
        deployment: Deployment = request.getfixturevalue("deployment")
        return deployment.endpoint
    pool: ServerPool = request.getfixturevalue("server_pool")
    server = serving_config(plan, request.getfixturevalue("served_model"), model_cache)
    try:
        running = pool.get(profiled(config, plan, server, config.stash[RUN_KEY]))
    except HarnessError as exc:
        _stop_session(request, f"the plan's server could not start: {exc}")
    pool.attach(running, lambda: _telemetry(plan, running, config.stash[RUN_KEY]))
    return running.endpoint


def _telemetry(plan: Plan, server: VLLMServer, run: Run) -> Sampler | None:
    """Device telemetry for the plan's server while it runs (suites.telemetry), into the run's telemetry folder;
    None when it is off, or when the server's processes are not this host's to read (a CPU server in a container)."""
    spec = plan.suites.telemetry
    pid = None if server.container_name else server.pid
    reader = reader_for(server.config.platform, pid) if spec.enabled else None
    if reader is None:
        return None
    out = inside(run.directory / "telemetry", f"{server.log_path.stem}.jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    return Sampler(reader, out, spec.interval_s, spec.deadline_s)


def _stop_session(request: pytest.FixtureRequest, reason: str) -> NoReturn:
    """Fail this test with `reason` and start no other: every test after it needs the same server, and a dozen
    copies of one error (some for tests that would have skipped) hide it. Said once, with what to do."""
    first = reason.splitlines()[0]
    request.session.shouldstop = f"{first[:300]} (the remaining tests were not started)"
    pytest.fail(reason, pytrace=False)


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
    own = serving_config(plan, model, model_cache)

    def start(variant: Plan) -> Endpoint:
        config = serving_config(variant, model, model_cache)
        return pool.get(config, alongside=own).endpoint

    return start


class Deployments:
    """Multi-instance deployments started in this session, by plan source; entered on the session's exit stack."""

    def __init__(self, stack: ExitStack) -> None:
        self.stack = stack
        self.running: dict[str, Deployment] = {}


@pytest.fixture(scope="session")
def deployments(request: pytest.FixtureRequest, llmqual_run: Run) -> Iterator[Deployments]:
    """Every deployment the session starts; all stopped at the end (last started first), however it ends."""
    with ExitStack() as stack:
        yield Deployments(stack)


@pytest.fixture
def deployment(plan: Plan, model_cache: Path, llmqual_run: Run, deployments: Deployments) -> Deployment:
    """The plan's prefill/decode instances, started together once per session: node 0's here (with their rank
    table on NPU), the other nodes' waited for (they run `llmqual deploy up --plan F --node N`), and the request
    proxy in front of all of them."""
    if plan.deployment is None:
        pytest.skip("the plan has no deployment section")
    if plan.source not in deployments.running:
        folder = inside(llmqual_run.log_dir, f"deployment-{plan.name}")
        table = write_rank_table(plan, folder) if plan.platform == "npu" else None
        configs = instance_configs(plan, resolve_model(plan, model_cache), model_cache, table)
        leases = model_cache / "leases"
        remotes = remote_instances(plan, node=0)  # other nodes run theirs with `llmqual deploy up --node N`
        timeout = plan.deployment.remote_ready_timeout_s
        deployment = Deployment(
            configs, folder, lease_dir=leases, proxied=True, remotes=remotes, remote_timeout_s=timeout
        )
        deployments.running[plan.source] = deployments.stack.enter_context(deployment)
    return deployments.running[plan.source]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """A failed test that used a started server carries the tail of that server's log."""
    report = yield
    pool = item.config.stash.get(POOL_KEY, None)
    if report.failed and pool is not None and "endpoint" in getattr(item, "fixturenames", ()):
        for server in pool.started[-1:]:
            report.sections.append((f"vLLM server log tail ({server.log_path})", server.log_tail()))
    return report
