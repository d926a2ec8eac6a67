"""A rehearsal of a plan's run: every container, server, deployment instance, request proxy and training launch
the run would start, and the files it would write, built by the code that starts them, with nothing started.

The commands come from the functions a run calls (`harness.server.vllm` for vLLM's command line,
`harness.runtime.container` for `docker run` / `docker exec`, `harness.deploy.multi` for the instances and their
rank table, the training launchers), so what is shown is what runs. What only the run can know is a placeholder:
a port picked at start (`<free port>`), a container's drawn name, the harness's process identity, a device IP
read on its node (`hccn_tool`). It works for any platform's plan on any machine: no device, docker or model is
needed, and what this machine lacks is said in a note, not raised.
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
from pathlib import Path

from harness.config.plan import Plan
from harness.config.training import TrainingSpec
from harness.deploy.multi import instance_configs, remote_instances, role_of
from harness.deploy.proxy_server import ProxyServer
from harness.errors import HarnessError
from harness.explain.ranks import container_rank_steps, rank_steps, rank_table_step
from harness.explain.steps import CONTAINER_NAME, FREE_PORT, OWNER, Step, masked
from harness.model.tiny import tiny_model_dir
from harness.paths import file_name, inside
from harness.runtime.container import Container
from harness.runtime.image import base_image_tag, is_base_image
from harness.runtime.leases import LEASED_PLATFORMS
from harness.server.apikey import api_key_of
from harness.server.vllm import ServerConfig, VLLMServer, server_config
from harness.training.eagle import eagle_dir
from harness.training.launchers import prepare
from harness.training.tiny_trainer import REPRODUCIBLE_ENV

RUN_ID = "<run id>"
TRAINED_KEY = "<run key: base model, configuration and tokenised data>"


def rehearse(plan: Plan, cache: Path, run_dir: Path) -> list[Step]:
    """The steps of a run of `plan` (its folder `run_dir`, the harness's cache `cache`) in the order the run takes
    them: the model (built or trained), then the servers, or the deployment's instances node by node and its proxy."""
    steps, model = _model_steps(plan, cache, run_dir)
    if plan.deployment is not None:
        return steps + _deployment_steps(plan, model, cache, run_dir)
    draft = None
    if plan.model.tiny is not None and plan.model.tiny.eagle is not None and plan.server.speculative_config:
        draft = eagle_dir(model, plan.model.tiny.eagle, cache)
        job = (sys.executable, "-m", "harness.training.eagle", str(draft / "job.json"))
        what = "the EAGLE draft head for the served model (once, then cached)"
        steps.append(Step("training", what, argv=job, env=masked(REPRODUCIBLE_ENV), writes=(str(draft),)))
    started: dict[str, int] = {}  # server configuration -> its server step: the pool starts each one once
    for who, variant, label in _server_variants(plan):
        config = dataclasses.replace(server_config(variant, model, cache, draft), label=label)
        if config.key() in started:
            first = steps[started[config.key()]]
            steps[started[config.key()]] = dataclasses.replace(first, notes=(*first.notes, f"also for {who}"))
            continue
        log = inside(run_dir / "logs", f"vllm-{config.served_model_name}-{config.key()}.log")
        steps += _server_steps(config, who, log)
        started[config.key()] = len(steps) - 1
    return steps


def _server_variants(plan: Plan) -> list[tuple[str, Plan, str]]:
    """Each server configuration the plan's suites start: the plan's own, the quantisation pair, the A/B sides."""
    variants = [("the plan's server (the serving and accuracy suites)", plan, "")]
    quant = plan.suites.quant
    if quant is not None:
        sides = ("reference", "candidate")
        variants += [(f"suites.quant {side}", plan.server_with(getattr(quant, side)), "") for side in sides]
    if plan.ab is not None:
        ab_sides = [("ab reference side", plan.ab.reference, "")]
        ab_sides += [
            (f"ab comparison {c.name}, candidate side", c.candidate, f"ab-{c.name}") for c in plan.ab.comparisons
        ]
        for who, side, label in ab_sides:
            env = {"env": {**plan.server.env, **side.env}} if side.env else {}
            variants.append((f"{who} ({side.describe()})", plan.server_with({**side.server, **env}), label))
    return variants


def _model_steps(plan: Plan, cache: Path, run_dir: Path) -> tuple[list[Step], Path]:
    """What makes the served model (a build, a training run) and the folder the servers load."""
    tiny = plan.model.tiny
    if tiny is None:
        path = plan.model_path()
        assert path is not None  # the plan validator demands a path or a tiny model
        steps = []
        if not (path / "config.json").is_file():
            steps.append(Step("model", f"model.path {path}", notes=("no config.json there on this machine",)))
        return steps + _training_steps(plan, path, run_dir), path
    built = tiny_model_dir(tiny, cache)
    what = "the plan's tiny model, built in the harness's process (once, then cached)"
    steps = [Step("model", what, writes=(str(built),))]
    if not tiny.trained:
        return steps, built
    steps += _training_steps(plan, built, run_dir)
    training = plan.suites.training
    if plan.serves_external_training and training is not None:
        launch = prepare(training, built, plan.relative, _training_out(training, run_dir), plan.source, rehearse=True)
        assert launch.checkpoint is not None  # LLaMA-Factory's output folder
        return steps, launch.checkpoint
    return steps, cache / "trained" / TRAINED_KEY / "final"


def _training_out(training: TrainingSpec, run_dir: Path) -> Path:
    return inside(run_dir, "training", training.launcher)  # as harness.training.fixtures places it


def _training_steps(plan: Plan, model: Path, run_dir: Path) -> list[Step]:
    """The training launch of `suites.training`, and what this machine says of its inputs."""
    training = plan.suites.training
    if training is None:
        return []
    if training.launcher == "tiny":
        argv = (sys.executable, "-m", "harness.training.tiny_trainer", "<request JSON: base model, out, configuration>")
        what = "the plan's tiny training run, in its own process (once, then cached)"
        writes = (str(model.parent.parent / "trained" / TRAINED_KEY),)
        return [Step("training", what, argv=argv, env=masked(REPRODUCIBLE_ENV), writes=writes)]
    launch = prepare(training, model, plan.relative, _training_out(training, run_dir), plan.source, rehearse=True)
    notes = [
        f"runs in {launch.cwd}; output to {launch.console}; loss curve from {launch.log} ({launch.log_format})",
        "uses the cards its environment makes visible (every card of the node unless ASCEND_RT_VISIBLE_DEVICES or "
        "the launcher's own settings say otherwise): no lease",
    ]
    with tempfile.TemporaryDirectory(prefix="llmqual-rehearsal-") as scratch:
        try:  # the run's own checks, on this machine, into a scratch folder
            prepare(training, model, plan.relative, Path(scratch), plan.source)
        except HarnessError as exc:
            notes.append(f"here the launch would stop before it starts: {exc}")
    what = f"{launch.launcher} (suites.training), to its end within {training.timeout_s:.0f} s"
    written = tuple(str(p) for p in launch.written)
    return [Step("training", what, argv=tuple(launch.argv), env=masked(launch.env), writes=written, notes=tuple(notes))]


def _server_steps(config: ServerConfig, who: str, log: Path, node: int = 0) -> list[Step]:
    """The server of `config` (devices leased as the pool leases them), in its container when the plan has one."""
    notes = []
    spec = config.spec
    if config.platform in LEASED_PLATFORMS and spec.devices and not config.devices:
        count = spec.tensor_parallel_size * spec.pipeline_parallel_size
        config = dataclasses.replace(config, devices=tuple(spec.devices[:count]))
        notes.append(
            f"leases {count} of server.devices {list(spec.devices)}, the first free at start (shown: the first)"
        )
    elif spec.nodes is not None and spec.nodes.rank(0).devices:
        notes.append("the cards of server.nodes.ranks[0].devices (a server spanning nodes owns its nodes' cards)")
    elif config.platform in LEASED_PLATFORMS and not config.devices:
        notes.append("no server.devices: nothing is leased, and vLLM sees every card of the node")
    port = spec.port or FREE_PORT
    server = VLLMServer(config, log)
    key = api_key_of(config)
    secret = {"VLLM_API_KEY": key} if key else {}
    notes += [
        f"ready when /health and /v1/models answer on {config.host}:{port}, within {spec.startup_timeout_s:.0f} s"
    ]
    notes += [f"log: {log}"]
    if config.container is None:
        env = masked({**server.process_env(), **secret})
        head = Step("server", who, node, tuple(server.argv(port)), env, config.devices, notes=tuple(notes))
        return [head, *rank_steps(server, port)]
    cards = tuple(server.container_cards()) if config.platform != "cpu" else ()
    wanted = config.container
    image = base_image_tag() if is_base_image(wanted.image) else wanted.image
    container = Container(
        wanted.model_copy(update={"image": image}),
        cards,
        RUN_ID,
        platform=config.platform,
        reads=server.reads(),
        writes=server.writes(),
        name=CONTAINER_NAME,
        owner=OWNER,
    )
    exec_argv, _ = server.container_argv(container, port, {**server.head_env(), **secret})
    kept = [f"removed with `docker rm --force {CONTAINER_NAME}` when the run ends, however it ends"]
    if wanted.block_metadata:
        kept.append(
            f"then iptables -I OUTPUT -d {wanted.metadata_address} (its cgroup) -j REJECT, proved by a connection "
            "from inside that must be refused; the rule is deleted with the container (docs/faults.md)"
        )
    inner = masked({**server.head_env(), **secret})
    ranks = container_rank_steps(server, container, port)
    return [
        Step(
            "container", f"for {who}", node, tuple(container.run_argv()), masked(wanted.env), cards, notes=tuple(kept)
        ),
        Step("server", f"{who}, in the container", node, tuple(exec_argv), inner, cards, notes=tuple(notes)),
        *ranks,
    ]


def _deployment_steps(plan: Plan, model: Path, cache: Path, run_dir: Path) -> list[Step]:
    """Each node's rank table (NPU) and instances, node 0's first; the request proxy on node 0 last."""
    assert plan.deployment is not None
    steps: list[Step] = []
    urls: dict[str, list[str]] = {"prefill": [], "decode": [], "mixed": []}
    folder = inside(run_dir / "logs", f"deployment-{plan.name}")
    first = ""
    for node, entry in enumerate(plan.deployment.nodes):
        # node 0 is the pytest run's; another node's folder is the one `llmqual deploy up --node N` uses there
        here = folder if node == 0 else cache / "logs" / f"deploy-{file_name(plan.name)}-node{node}"
        table = here / "ranktable.json" if plan.platform == "npu" else None
        if table is not None:
            steps.append(rank_table_step(plan, node, table, first))
            first = first or steps[-1].content
        elsewhere = "" if node == 0 else f"llmqual deploy up --plan {plan.source} --node {node}"
        for index, config in enumerate(instance_configs(plan, model, cache, table, node)):
            role = role_of(config)
            who = f"{role} instance {index} of node {node} ({entry.server_id}:{config.spec.port})"
            for step in _server_steps(config, who, here / f"vllm-instance{index}-{config.spec.port}.log", node):
                steps.append(dataclasses.replace(step, kind=f"{step.kind} ({role})", elsewhere=elsewhere))
            if node == 0:
                urls[role].append(f"http://{config.host}:{config.spec.port}")
    for remote in remote_instances(plan, 0):
        urls[remote.role].append(remote.base_url)
    decode = urls["decode"] or urls["mixed"]
    proxy = ProxyServer(urls["prefill"] or decode, decode, model.name, folder / "proxy.log")
    notes = (
        "opens once every instance, on every node, answers /health and lists the model; the suites send to it",
        f"log: {proxy.log_path}",
    )
    steps.append(
        Step("proxy", "the request proxy in front of the instances", 0, tuple(proxy.argv(FREE_PORT)), notes=notes)
    )
    return steps
