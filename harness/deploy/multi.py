"""Start the instances of a deployment together, stop them together.

Each instance is a vLLM server of the plan with the instance's port, its devices made visible
(ASCEND_RT_VISIBLE_DEVICES), the rank table's path in DISAGGREGATED_PREFILL_RANK_TABLE_PATH (what vllm-ascend's
disaggregated-prefill connectors read) and, for prefill and decode, `kv_role` set in `--kv-transfer-config`.
If one instance fails to start, the ones already up are stopped before the error is raised.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from harness.config.plan import Plan, ServerSpec
from harness.deploy.ranktable import check_rank_table, rank_table
from harness.errors import PlanError
from harness.platform.environment import server_environment
from harness.runtime.leases import VISIBLE, DeviceLease
from harness.server.vllm import ServerConfig, VLLMServer

KV_ROLES = {"prefill": "kv_producer", "decode": "kv_consumer"}
RANK_TABLE_ENV = "DISAGGREGATED_PREFILL_RANK_TABLE_PATH"


def write_rank_table(plan: Plan, folder: Path) -> Path:
    """The plan's rank table as a file (checked before it is written)."""
    assert plan.deployment is not None
    table = rank_table(plan.deployment)
    problems = check_rank_table(table)
    if problems:
        raise PlanError(plan.source, "deployment", "; ".join(problems), "fix the nodes' devices and device-ips")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "ranktable.json"
    path.write_text(json.dumps(table, indent=2) + "\n", encoding="utf-8")
    return path


def instance_configs(plan: Plan, model_path: Path, cache: Path, table: Path, node: int = 0) -> list[ServerConfig]:
    """One ServerConfig per instance of node `node` of the plan's deployment."""
    assert plan.deployment is not None
    configs = []
    for index, instance in enumerate(plan.deployment.nodes[node].instances):
        key = f"deployment.nodes.{node}.instances.{index}"
        base = plan.server_with(instance.server).server
        kv = dict(base.kv_transfer_config or {})
        if instance.role in KV_ROLES:
            kv["kv_role"] = KV_ROLES[instance.role]
        spec = ServerSpec.model_validate(
            {**base.model_dump(by_alias=True), "port": instance.port, "kv-transfer-config": kv or None}
        )
        if spec.tensor_parallel_size * spec.pipeline_parallel_size != len(instance.devices):
            raise PlanError(
                plan.source,
                key,
                f"{len(instance.devices)} devices for tensor x pipeline parallel size "
                f"{spec.tensor_parallel_size * spec.pipeline_parallel_size}",
                "give as many devices as the instance's parallel size (set server.tensor-parallel-size per instance)",
            )
        env = server_environment(plan.platform, cache, overrides=spec.env)
        if plan.platform in VISIBLE:
            env[VISIBLE[plan.platform]] = ",".join(str(d) for d in instance.devices)
        env[RANK_TABLE_ENV] = str(table)
        configs.append(ServerConfig(plan.platform, model_path, spec, tuple(sorted(env.items()))))
    return configs


class Deployment:
    """The instances of a deployment as one resource."""

    def __init__(
        self,
        configs: list[ServerConfig],
        log_dir: Path,
        factory: Callable[[ServerConfig, Path], VLLMServer] = VLLMServer,
        lease_dir: Path | None = None,
        lease_timeout_s: float = 600.0,
    ) -> None:
        self.configs, self.log_dir, self.factory = configs, log_dir, factory
        self.lease_dir, self.lease_timeout_s = lease_dir, lease_timeout_s
        self.servers: list[VLLMServer] = []
        self.leases: list[DeviceLease] = []

    def _lease(self, config: ServerConfig) -> None:
        """Hold exactly the instance's cards, so no other run or worker binds them meanwhile."""
        visible = dict(config.env).get(VISIBLE.get(config.platform, ""), "")
        if self.lease_dir is None or not visible:
            return
        cards = [int(n) for n in visible.split(",")]
        holder = f"pid {os.getpid()}: instance on port {config.spec.port}"
        lease = DeviceLease(self.lease_dir, config.platform, cards, len(cards), self.lease_timeout_s, holder)
        self.leases.append(lease.__enter__())

    def __enter__(self) -> Deployment:
        try:
            for index, config in enumerate(self.configs):
                self._lease(config)
                server = self.factory(config, self.log_dir / f"vllm-instance{index}-{config.spec.port}.log")
                server.__enter__()
                self.servers.append(server)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        errors = []
        while self.servers:
            try:
                self.servers.pop().stop()
            except Exception as exc:  # stop every instance before reporting
                errors.append(exc)
        while self.leases:
            self.leases.pop().release()
        if errors:
            raise errors[0]

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
