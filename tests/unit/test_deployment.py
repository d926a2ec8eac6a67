"""Multi-instance deployments: conflicts refused offline, the HCCL rank table, instances started and stopped
together (fake servers: no NPU here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.config.plan import load_plan
from harness.deploy.multi import RANK_TABLE_ENV, Deployment, instance_configs, write_rank_table
from harness.deploy.ranktable import check_rank_table
from harness.errors import PlanError, ServerStartError
from harness.runtime.leases import DeviceLease, LeaseError
from harness.server.vllm import ServerConfig, VLLMServer, vllm_arguments

REPO = Path(__file__).resolve().parents[2]
PD_PLAN = REPO / "fixtures/plans/npu-qwen2.5-7b-pd-910b.yaml"

BASE = """
name: t
platform: npu
model: {path: /m}
server: {tensor-parallel-size: 2}
deployment:
  nodes:
    - server-id: 10.0.0.1
      device-ips: {0: 192.1.0.1, 1: 192.1.0.2, 2: 192.1.0.3, 3: 192.1.0.4}
      instances:
"""


def plan_with(tmp_path: Path, *instances: str) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(BASE + "".join(f"        - {{{i}}}\n" for i in instances))
    return path


P01 = "role: prefill, port: 8100, devices: [0, 1]"
D23 = "role: decode, port: 8200, devices: [2, 3]"


@pytest.mark.parametrize(
    ("instances", "problem"),
    [
        ((P01, "role: decode, port: 8100, devices: [2, 3]"), "both use port 8100"),
        ((P01, "role: decode, port: 8200, devices: [1, 2]"), "device 1 on 10.0.0.1 is given to instances 0 and 1"),
        (("role: prefill, port: 8100, devices: [0, 7]", D23), "device 7 on 10.0.0.1 has no entry in device-ips"),
        ((P01,), "needs both prefill and decode"),
    ],
)
def test_conflicts_are_refused_offline(tmp_path: Path, instances: tuple[str, ...], problem: str) -> None:
    with pytest.raises(PlanError, match=problem):
        load_plan(plan_with(tmp_path, *instances))


def test_the_rank_table_follows_hccl_v1(tmp_path: Path) -> None:
    path = write_rank_table(load_plan(PD_PLAN), tmp_path)
    table = json.loads(path.read_text())
    assert check_rank_table(table) == []
    assert table["version"] == "1.0"
    assert table["server_count"] == "1"
    (server,) = table["server_list"]
    assert server["server_id"] == "10.155.111.140"
    assert server["device"] == [
        {"device_id": "0", "device_ip": "192.1.27.6", "rank_id": "0"},
        {"device_id": "1", "device_ip": "192.2.27.6", "rank_id": "1"},
        {"device_id": "2", "device_ip": "192.3.27.6", "rank_id": "2"},
        {"device_id": "3", "device_ip": "192.4.27.6", "rank_id": "3"},
    ]
    assert table["status"] == "completed"


def test_rank_table_checks_catch_bad_documents() -> None:
    bad = {"version": "1.0", "server_count": "2", "server_list": [{"device": [{"device_id": 0, "rank_id": "1"}]}]}
    problems = check_rank_table(bad)
    assert any("server_count" in p for p in problems)
    assert any("device_id" in p and "not a string" in p for p in problems)
    assert any("not 0..0" in p for p in problems)


def test_instances_get_their_port_devices_role_and_rank_table(tmp_path: Path) -> None:
    plan = load_plan(PD_PLAN)
    table = write_rank_table(plan, tmp_path)
    prefill, decode = instance_configs(plan, Path("/m"), tmp_path, table)
    for config, port, devices, role in ((prefill, 8100, "0,1", "kv_producer"), (decode, 8200, "2,3", "kv_consumer")):
        env = dict(config.env)
        assert env["ASCEND_RT_VISIBLE_DEVICES"] == devices
        assert env[RANK_TABLE_ENV] == str(table)
        args = vllm_arguments(config, "127.0.0.1", config.spec.port or 0)
        assert args[args.index("--port") + 1] == str(port)
        kv = json.loads(args[args.index("--kv-transfer-config") + 1])
        assert kv["kv_role"] == role
        assert kv["kv_connector"] == "LLMDataDistCMgrConnector"


def test_an_instance_with_the_wrong_device_count_is_refused(tmp_path: Path) -> None:
    plan = load_plan(plan_with(tmp_path, "role: prefill, port: 8100, devices: [0]", D23))
    with pytest.raises(PlanError, match="1 devices for tensor x pipeline parallel size 2"):
        instance_configs(plan, Path("/m"), tmp_path, tmp_path / "t.json")


class Recorder(VLLMServer):
    events: list[str] = []  # noqa: RUF012 - shared log of every fake's lifecycle
    fail_port: int | None = None

    def __enter__(self) -> Recorder:
        if self.config.spec.port == self.fail_port:
            raise ServerStartError("planted", "")
        self.events.append(f"start {self.config.spec.port}")
        return self

    def stop(self) -> None:
        self.events.append(f"stop {self.config.spec.port}")


def _configs(tmp_path: Path) -> list[ServerConfig]:
    plan = load_plan(PD_PLAN)
    return instance_configs(plan, Path("/m"), tmp_path, write_rank_table(plan, tmp_path))


def test_instances_start_and_stop_together(tmp_path: Path) -> None:
    Recorder.events, Recorder.fail_port = [], None
    with Deployment(_configs(tmp_path), tmp_path, Recorder) as deployment:
        assert len(deployment.servers) == 2
    assert Recorder.events == ["start 8100", "start 8200", "stop 8200", "stop 8100"]


def test_a_failed_instance_stops_the_ones_already_up(tmp_path: Path) -> None:
    Recorder.events, Recorder.fail_port = [], 8200
    with pytest.raises(ServerStartError), Deployment(_configs(tmp_path), tmp_path, Recorder):
        pass
    assert Recorder.events == ["start 8100", "stop 8100"]


def test_instances_hold_their_cards_while_up(tmp_path: Path) -> None:
    Recorder.events, Recorder.fail_port = [], None
    leases = tmp_path / "leases"
    with (
        Deployment(_configs(tmp_path), tmp_path, Recorder, lease_dir=leases),
        pytest.raises(LeaseError, match=r"held: 0: pid \d+: instance on port 8100, 1: pid \d+: instance on port 8100"),
    ):
        DeviceLease(leases, "npu", [0, 1], 1, timeout_s=0.1).__enter__()
    with DeviceLease(leases, "npu", [0, 1, 2, 3], 4, timeout_s=1):
        pass
