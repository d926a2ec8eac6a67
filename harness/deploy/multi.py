"""Start the instances of a deployment together, stop them together.

Each instance is a vLLM server of the plan with the instance's port, its devices made visible
(ASCEND_RT_VISIBLE_DEVICES), for prefill and decode `kv_role` set in `--kv-transfer-config`, and what
vllm-ascend's LLMDataDistCMgrConnector reads from the environment (vllm-ascend 0.11.0, `vllm_ascend/envs.py`):
the v1.2 rank table's path in DISAGGREGATED_PREFILL_RANK_TABLE_PATH, an RPC port of its own on the node in
VLLM_ASCEND_LLMDD_RPC_PORT (5557, the connector's default, plus the instance's index on the node) and the node's
IP in HCCL_IF_IP; an instance's `server.env` overrides each. If one instance fails to start, the ones already up
are stopped before the error is raised.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from harness.config.deployment import KV_ROLES
from harness.config.plan import Plan, ServerSpec
from harness.deploy.device_ips import read_device_ips
from harness.deploy.proxy_server import ProxyServer
from harness.deploy.ranktable import DeviceIps, check_pd_rank_table, pd_rank_table
from harness.errors import HarnessError, PlanError, ServerStartError
from harness.platform.environment import server_environment
from harness.runtime.leases import LEASED_PLATFORMS, DeviceLease
from harness.server.endpoint import Endpoint
from harness.server.readiness import NotReady, wait_until_ready
from harness.server.vllm import ServerConfig, VLLMServer

RANK_TABLE_ENV = "DISAGGREGATED_PREFILL_RANK_TABLE_PATH"
RPC_PORT_ENV = "VLLM_ASCEND_LLMDD_RPC_PORT"
RPC_PORT_BASE = 5557
HCCL_IF_IP_ENV = "HCCL_IF_IP"


def missing_device_ips(plan: Plan, node: int, reader: Callable[[list[int]], dict[int, str]] | None = None) -> DeviceIps:
    """The device IPs the plan leaves out, read on this node (`node`); another node's must be in the plan. An A3
    node (one with `super-pod-id`) is read by its virtual NICs, as vllm-ascend's rank-table script does."""
    assert plan.deployment is not None
    read: dict[str, dict[int, str]] = {}
    for index, entry in enumerate(plan.deployment.nodes):
        if entry.device_ips:
            continue
        if index != node:
            raise PlanError(
                plan.source, f"deployment.nodes.{index}.device-ips", "missing, and it cannot be read from node "
                f"{node}", f"give them in the plan (`hccn_tool -i N -ip -g`, on A3 `-vnic -g`, on {entry.server_id})",
            )  # fmt: skip
        devices = [d for i in entry.instances for d in i.devices]
        a3 = entry.super_pod_id is not None
        read[entry.server_id] = reader(devices) if reader else read_device_ips(devices, vnic=a3)
    return read


def rank_table_of(
    plan: Plan, node: int = 0, reader: Callable[[list[int]], dict[int, str]] | None = None
) -> dict[str, object]:
    """The plan's v1.2 rank table (checked), the device IPs the plan leaves out read on node `node`."""
    assert plan.deployment is not None
    table = pd_rank_table(plan.deployment, missing_device_ips(plan, node, reader))
    problems = check_pd_rank_table(table)
    if problems:
        raise PlanError(plan.source, "deployment", "; ".join(problems), "fix the nodes' devices and device-ips")
    return table


def write_rank_table(
    plan: Plan, folder: Path, node: int = 0, reader: Callable[[list[int]], dict[int, str]] | None = None
) -> Path:
    """The plan's v1.2 rank table as a file (checked before it is written)."""
    table = rank_table_of(plan, node, reader)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "ranktable.json"
    path.write_text(json.dumps(table, indent=2) + "\n", encoding="utf-8")
    return path


def instance_configs(
    plan: Plan, model_path: Path, cache: Path, table: Path | None, node: int = 0
) -> list[ServerConfig]:
    """One ServerConfig per instance of node `node` of the plan's deployment (in the plan's container, if it has
    one, with the rank table mounted). On CPU an instance's devices are
    cores: the instance runs on them (server.cpus) with its compute thread bound to them, and there is no rank
    table (`table` None)."""
    assert plan.deployment is not None
    configs = []
    # One node: the instances listen on the loopback. Several: on the node's IP, where the proxy on node 0 (and the
    # other nodes' instances) reach them; the ports must be open between the nodes (docs/disaggregated.md).
    host = plan.deployment.nodes[node].server_id if len(plan.deployment.nodes) > 1 else "127.0.0.1"
    for index, instance in enumerate(plan.deployment.nodes[node].instances):
        key = f"deployment.nodes.{node}.instances.{index}"
        base = plan.server_with(instance.server).server
        kv = dict(base.kv_transfer_config or {})
        if instance.role in KV_ROLES:
            kv["kv_role"] = KV_ROLES[instance.role]
        fields = {**base.model_dump(by_alias=True), "port": instance.port, "kv-transfer-config": kv or None}
        if plan.platform == "cpu":
            fields["cpus"] = list(instance.devices)
        spec = ServerSpec.model_validate(fields)
        if spec.tensor_parallel_size * spec.pipeline_parallel_size != len(instance.devices):
            raise PlanError(
                plan.source,
                key,
                f"{len(instance.devices)} devices for tensor x pipeline parallel size "
                f"{spec.tensor_parallel_size * spec.pipeline_parallel_size}",
                "give as many devices as the instance's parallel size (set server.tensor-parallel-size per instance)",
            )
        env = server_environment(plan.platform, cache)
        cards = tuple(instance.devices) if plan.platform in LEASED_PLATFORMS else ()  # on the CPU: cores, placed
        if plan.platform == "cpu":
            env["VLLM_CPU_OMP_THREADS_BIND"] = ",".join(str(d) for d in instance.devices)
        if table is not None:
            env[RANK_TABLE_ENV] = str(table)
            env[RPC_PORT_ENV] = str(RPC_PORT_BASE + index)
            env[HCCL_IF_IP_ENV] = plan.deployment.nodes[node].server_id
        env.update(spec.env)
        files = (str(table),) if table is not None else ()
        env_items = tuple(sorted(env.items()))
        configs.append(
            ServerConfig(
                plan.platform, model_path, spec, env_items, plan.container, devices=cards, files=files, host=host
            )
        )
    return configs


@dataclass(frozen=True)
class Remote:
    """An instance another node runs (`llmqual deploy up --node N` there): its role and where it answers."""

    role: str
    base_url: str


def remote_instances(plan: Plan, node: int = 0) -> list[Remote]:
    """The instances of every node but `node`, at http://<server-id>:<port>."""
    assert plan.deployment is not None
    return [
        Remote(instance.role, f"http://{entry.server_id}:{instance.port}")
        for index, entry in enumerate(plan.deployment.nodes)
        if index != node
        for instance in entry.instances
    ]


def wait_for_remotes(
    remotes: list[Remote],
    model: str,
    deadline_s: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Wait until every remote instance is ready (/health, and /v1/models lists `model`), under one deadline for
    all; the error names each instance not ready and why."""
    started = clock()
    waiting = list(remotes)
    problems: dict[str, str] = {}
    while waiting:
        for remote in list(waiting):
            left = deadline_s - (clock() - started)
            try:
                wait_until_ready(Endpoint(remote.base_url, model), max(left, 0.0), lambda: None, clock, sleep)
            except NotReady as exc:
                problems[remote.base_url] = str(exc)
            else:
                waiting.remove(remote)
        if waiting and clock() - started > deadline_s:
            listed = "; ".join(f"{r.role} {r.base_url}: {problems.get(r.base_url)}" for r in waiting)
            raise ServerStartError(
                f"other nodes' instances not ready within {deadline_s:.0f} s (start them there with `llmqual "
                f"deploy up --plan F --node N`): {listed}"
            )


def role_of(config: ServerConfig) -> str:
    """prefill, decode or mixed, from the kv_role the instance was given."""
    kv_role = str((config.spec.kv_transfer_config or {}).get("kv_role"))
    return {role: name for name, role in KV_ROLES.items()}.get(kv_role, "mixed")


class Deployment:
    """The instances of a deployment as one resource; with `proxied`, a request proxy in front of them
    (harness.deploy.proxy) is started last and stopped first, and `endpoint` is the proxy's."""

    def __init__(
        self,
        configs: list[ServerConfig],
        log_dir: Path,
        factory: Callable[[ServerConfig, Path], VLLMServer] = VLLMServer,
        lease_dir: Path | None = None,
        lease_timeout_s: float = 600.0,
        proxied: bool = False,
        remotes: list[Remote] | None = None,
        remote_timeout_s: float = 1800.0,
    ) -> None:
        self.configs, self.log_dir, self.factory = configs, log_dir, factory
        self.lease_dir, self.lease_timeout_s = lease_dir, lease_timeout_s
        self.proxied = proxied
        self.remotes, self.remote_timeout_s = list(remotes or []), remote_timeout_s
        self.servers: list[VLLMServer] = []
        self.proxy: ProxyServer | None = None
        self._running = ExitStack()  # leases, servers and the proxy, stopped in the reverse order of their start

    @property
    def endpoint(self) -> Endpoint:
        if self.proxy is None:
            raise HarnessError("the deployment has no request proxy (started with proxied=False, or stopped)")
        return dataclasses.replace(self.proxy.endpoint, deployment=self.shape())

    def shape(self) -> str:
        """The deployment as the P/D literature writes it: `1P1D`, `2P1D` (mixed instances: `+1M`)."""
        roles = [role_of(server.config) for server in self.servers] + [remote.role for remote in self.remotes]
        mixed = roles.count("mixed")
        return f"{roles.count('prefill')}P{roles.count('decode')}D" + (f"+{mixed}M" if mixed else "")

    def _proxy(self) -> ProxyServer:
        """The request proxy in front of every instance, once every remote node's instances serve."""
        urls: dict[str, list[str]] = {"prefill": [], "decode": [], "mixed": []}
        for server in self.servers:
            urls[role_of(server.config)].append(server.endpoint.base_url)
        model = self.servers[0].endpoint.model
        wait_for_remotes(self.remotes, model, self.remote_timeout_s)  # the proxy opens when every node serves
        for remote in self.remotes:
            urls[remote.role].append(remote.base_url)
        decode = urls["decode"] or urls["mixed"]
        prefill = urls["prefill"] or decode
        return ProxyServer(prefill, decode, model, self.log_dir / "proxy.log")

    def _lease(self, config: ServerConfig) -> DeviceLease | None:
        """A lease of exactly the instance's cards, so no other run or worker binds them meanwhile."""
        cards = list(config.devices)
        if self.lease_dir is None or not cards:
            return None
        holder = f"pid {os.getpid()}: instance on port {config.spec.port}"
        return DeviceLease(self.lease_dir, config.platform, cards, len(cards), self.lease_timeout_s, holder)

    def __enter__(self) -> Deployment:
        """Each instance's lease and server, then the proxy; a failure stops what was started, last first."""
        with ExitStack() as starting:
            starting.callback(self._forget)  # runs last when a start fails
            for index, config in enumerate(self.configs):
                lease = self._lease(config)
                if lease is not None:
                    starting.enter_context(lease)
                log = self.log_dir / f"vllm-instance{index}-{config.spec.port}.log"
                self.servers.append(starting.enter_context(self.factory(config, log)))
            if self.proxied:
                self.proxy = starting.enter_context(self._proxy())
            self._running = starting.pop_all()
        return self

    def _forget(self) -> None:
        self.servers, self.proxy = [], None

    def stop(self) -> None:
        """Stop the proxy, then each instance and its lease, last started first; every one is stopped even when
        one fails (a failure is raised once all are stopped)."""
        running, self._running = self._running, ExitStack()
        self._forget()
        running.close()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
