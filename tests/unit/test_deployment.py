"""Multi-instance deployments: conflicts refused offline, the v1.2 P/D rank table (vllm-ascend 0.11.0's layout) and
the v1.0 HCCL one, device IPs read with a fake hccn_tool, instances started and stopped together (fake servers: no
NPU here)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.config.plan import load_plan
from harness.deploy.device_ips import DeviceIpError, parse_ip, read_device_ips
from harness.deploy.multi import (
    HCCL_IF_IP_ENV,
    RANK_TABLE_ENV,
    RPC_PORT_ENV,
    Deployment,
    Remote,
    instance_configs,
    missing_device_ips,
    remote_instances,
    wait_for_remotes,
    write_rank_table,
)
from harness.deploy.ranktable import check_hccl_rank_table, check_pd_rank_table, hccl_rank_table
from harness.errors import PlanError, ServerStartError
from harness.runtime.leases import DeviceLease, LeaseError
from harness.server.endpoint import Endpoint
from harness.server.vllm import ServerConfig, VLLMServer, vllm_arguments
from tests.unit.test_proxy import FakeInstance, serving

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
        (
            (P01, "role: decode, port: 8200, devices: [2, 3], server: {kv-transfer-config: {kv_role: kv_producer}}"),
            "a decode instance has kv_role 'kv_producer'",
        ),
    ],
)
def test_conflicts_are_refused_offline(tmp_path: Path, instances: tuple[str, ...], problem: str) -> None:
    with pytest.raises(PlanError, match=problem):
        load_plan(plan_with(tmp_path, *instances))


def test_the_rank_table_has_vllm_ascends_pd_layout(tmp_path: Path) -> None:
    path = write_rank_table(load_plan(PD_PLAN), tmp_path)
    table = json.loads(path.read_text())
    assert check_pd_rank_table(table) == []
    assert list(table) == ["version", "server_count", "prefill_device_list", "decode_device_list", "status"]
    assert (table["version"], table["server_count"], table["status"]) == ("1.2", "1", "completed")
    node = "10.155.111.140"
    assert table["prefill_device_list"] == [
        {"server_id": node, "device_id": "0", "device_ip": "192.1.27.6", "cluster_id": "1"},
        {"server_id": node, "device_id": "1", "device_ip": "192.2.27.6", "cluster_id": "2"},
    ]
    assert table["decode_device_list"] == [
        {"server_id": node, "device_id": "2", "device_ip": "192.3.27.6", "cluster_id": "3"},
        {"server_id": node, "device_id": "3", "device_ip": "192.4.27.6", "cluster_id": "4"},
    ]


def test_the_hccl_table_stays_for_training() -> None:
    table = hccl_rank_table(load_plan(PD_PLAN).deployment)  # type: ignore[arg-type]
    assert check_hccl_rank_table(table) == []
    assert [d["rank_id"] for d in table["server_list"][0]["device"]] == ["0", "1", "2", "3"]


def _device(server: str, device: str, cluster: str) -> dict[str, str]:
    return {"server_id": server, "device_id": device, "device_ip": "192.1.0.1", "cluster_id": cluster}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda t: t.update(version="1.0"), "version is '1.0', expected '1.2'"),
        (lambda t: t.update(decode_device_list=[]), "decode_device_list is missing or empty"),
        (lambda t: t["prefill_device_list"][0].update(device_id=0), "[0].device_id is 0, not a string"),
        (lambda t: t["decode_device_list"][0].update(device_id="0"), "is device 0 of 10.0.0.1 again"),
        (lambda t: t["decode_device_list"][0].update(cluster_id="1"), "cluster_id 1 repeats"),
        (lambda t: t["decode_device_list"][0].pop("device_ip"), "decode_device_list[0] has no device_ip"),
        (lambda t: t.update(server_count="2"), "server_count '2' does not match 1 servers"),
        (lambda t: t["prefill_device_list"][0].update(super_pod_id="0", super_device_id="1"), "all or none (A3)"),
        (lambda t: t.update(status="pending"), "status is 'pending'"),
    ],
)  # fmt: skip
def test_the_pd_check_names_each_problem(change: Any, problem: str) -> None:
    table = {
        "version": "1.2", "server_count": "1", "prefill_device_list": [_device("10.0.0.1", "0", "1")],
        "decode_device_list": [_device("10.0.0.1", "1", "2")], "status": "completed",
    }  # fmt: skip
    assert check_pd_rank_table(table) == []
    change(table)
    problems = check_pd_rank_table(table)
    assert any(problem in p for p in problems), problems


def test_check_ranktable_command_exits_1_with_the_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "ok.json"
    assert main(["deploy", "ranktable", "--plan", str(PD_PLAN)]) == 0
    good.write_text(capsys.readouterr().out)
    assert main(["deploy", "check-ranktable", str(good)]) == 0
    assert "ok (version 1.2)" in capsys.readouterr().out
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": "1.2", "prefill_device_list": [], "status": "completed"}))
    assert main(["deploy", "check-ranktable", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "prefill_device_list is missing or empty" in out
    assert "decode_device_list is missing or empty" in out


FAKE_HCCN = """#!/bin/bash
# a fake hccn_tool: `-i N -ip -g` prints device N's address, as the real one does; `-vnic -g` the virtual NIC's
if [ "$2" = "7" ]; then echo "hccn_tool: device 7 has no address" >&2; exit 1; fi
if [ "$3" = "-vnic" ]; then printf 'ipaddr:10.9.0.%s\nnetmask:255.255.0.0\n' "$2"; exit 0; fi
printf 'ipaddr:192.9.0.%s\nnetmask:255.255.255.0\n' "$2"
"""


def test_device_ips_left_out_are_read_on_this_node_with_hccn_tool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tool = tmp_path / "hccn_tool"
    tool.write_text(FAKE_HCCN)
    tool.chmod(0o755)
    monkeypatch.setenv("HCCN_TOOL_PATH", str(tool))
    assert parse_ip("ipaddr:192.1.27.6\nnetmask:255.255.255.0") == "192.1.27.6"
    assert read_device_ips([0, 3]) == {0: "192.9.0.0", 3: "192.9.0.3"}
    plan = PD_PLAN.read_text().replace(
        "      device-ips: {0: 192.1.27.6, 1: 192.2.27.6, 2: 192.3.27.6, 3: 192.4.27.6}\n", ""
    )
    path = tmp_path / "pd.yaml"
    path.write_text(plan)
    assert main(["deploy", "ranktable", "--plan", str(path)]) == 0
    table = json.loads(capsys.readouterr().out)
    assert [d["device_ip"] for d in table["decode_device_list"]] == ["192.9.0.2", "192.9.0.3"]
    with pytest.raises(DeviceIpError, match=r"hccn_tool -i 7 -ip -g` gave no ipaddr"):
        read_device_ips([7])
    assert read_device_ips([0, 3], vnic=True) == {0: "10.9.0.0", 3: "10.9.0.3"}, "A3: the virtual NIC's address"
    a3_node = "      super-pod-id: '0'\n      super-device-ids: {0: '0', 1: '1', 2: '2', 3: '3'}\n      instances:\n"
    (tmp_path / "a3.yaml").write_text(plan.replace("      instances:\n", a3_node, 1))
    a3 = load_plan(tmp_path / "a3.yaml")
    assert missing_device_ips(a3, 0)["10.155.111.140"] == {d: f"10.9.0.{d}" for d in range(4)}


def test_another_nodes_ips_cannot_be_read_from_here(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    two = BASE.replace(
        "server-id: 10.0.0.1\n      device-ips: {0: 192.1.0.1, 1: 192.1.0.2, 2: 192.1.0.3, 3: 192.1.0.4}",
        "server-id: 10.0.0.1\n      device-ips: {0: 192.1.0.1, 1: 192.1.0.2}",
    )
    two += "        - {role: prefill, port: 8100, devices: [0, 1]}\n"
    two += "    - server-id: 10.0.0.2\n      instances:\n        - {role: decode, port: 8200, devices: [0, 1]}\n"
    path = tmp_path / "two.yaml"
    path.write_text(two)
    assert main(["deploy", "ranktable", "--plan", str(path), "--node", "0"]) == 2
    assert "deployment.nodes.1.device-ips: missing, and it cannot be read from node 0" in capsys.readouterr().err


def test_instances_get_their_port_devices_role_and_rank_table(tmp_path: Path) -> None:
    plan = load_plan(PD_PLAN)
    table = write_rank_table(plan, tmp_path)
    prefill, decode = instance_configs(plan, Path("/m"), tmp_path, table)
    for config, port, devices, role in ((prefill, 8100, "0,1", "kv_producer"), (decode, 8200, "2,3", "kv_consumer")):
        env = config.process_env()
        assert env["ASCEND_RT_VISIBLE_DEVICES"] == devices
        assert env[RANK_TABLE_ENV] == str(table)
        assert env[HCCL_IF_IP_ENV] == "10.155.111.140"
        assert env[RPC_PORT_ENV] == str(5557 if role == "kv_producer" else 5558), "one RPC port per instance"
        args = vllm_arguments(config, "127.0.0.1", config.spec.port or 0)
        assert args[args.index("--port") + 1] == str(port)
        kv = json.loads(args[args.index("--kv-transfer-config") + 1])
        assert kv["kv_role"] == role
        assert kv["kv_connector"] == "LLMDataDistCMgrConnector"
        assert (kv["kv_port"], kv["engine_id"]) == ("20001", "0"), "strings, as vllm-ascend's examples give them"


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
        self._endpoint = Endpoint(f"http://127.0.0.1:{self.config.spec.port}", "m")
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


def test_a_failed_instance_stops_the_ones_already_up_and_frees_their_cards(tmp_path: Path) -> None:
    Recorder.events, Recorder.fail_port = [], 8200
    deployment = Deployment(_configs(tmp_path), tmp_path, Recorder, lease_dir=tmp_path / "leases")
    with pytest.raises(ServerStartError), deployment:
        pass
    assert Recorder.events == ["start 8100", "stop 8100"]
    assert deployment.servers == []
    with DeviceLease(tmp_path / "leases", "npu", [0, 1, 2, 3], 4, timeout_s=1):
        pass  # every card is free again
    deployment.stop()  # a second stop does nothing
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


def test_on_cpu_an_instances_devices_are_its_cores_and_there_is_no_rank_table(tmp_path: Path) -> None:
    plan = load_plan(REPO / "fixtures/plans/cpu-tiny-pd.yaml")
    prefill, decode = instance_configs(plan, Path("/m"), tmp_path, None)
    for config, core, role in ((prefill, 0, "kv_producer"), (decode, 1, "kv_consumer")):
        env = dict(config.env)
        assert config.spec.cpus == (core,)
        assert env["VLLM_CPU_OMP_THREADS_BIND"] == str(core)
        assert RANK_TABLE_ENV not in env
        assert RPC_PORT_ENV not in env
        assert (config.spec.kv_transfer_config or {})["kv_role"] == role


TWO_NODES = """
name: two
platform: npu
model: {path: MODEL}
server: {tensor-parallel-size: 2}
deployment:
  remote-ready-timeout-s: 1.5
  nodes:
    - server-id: 10.0.0.1
      device-ips: {0: 192.1.0.1, 1: 192.1.0.2}
      instances:
        - {role: prefill, port: 8100, devices: [0, 1]}
    - server-id: 10.0.0.2
      device-ips: {0: 192.2.0.1, 1: 192.2.0.2, 2: 192.2.0.3, 3: 192.2.0.4}
      instances:
        - {role: decode, port: 8200, devices: [0, 1]}
        - {role: decode, port: 8201, devices: [2, 3]}
"""


def _two_nodes(tmp_path: Path) -> Path:
    model = tmp_path / "model"
    model.mkdir(parents=True, exist_ok=True)
    (model / "config.json").write_text("{}")
    path = tmp_path / "two.yaml"
    path.write_text(TWO_NODES.replace("MODEL", str(model)))
    return path


def test_node_0_knows_the_other_nodes_instances(tmp_path: Path) -> None:
    plan = load_plan(_two_nodes(tmp_path))
    assert remote_instances(plan, node=0) == [
        Remote("decode", "http://10.0.0.2:8200"), Remote("decode", "http://10.0.0.2:8201")
    ]  # fmt: skip
    assert remote_instances(plan, node=1) == [Remote("prefill", "http://10.0.0.1:8100")]


def test_node_0_waits_for_the_other_nodes_and_names_those_not_ready() -> None:
    with serving(FakeInstance("d0")) as (ready,):
        wait_for_remotes([Remote("decode", ready)], "m", deadline_s=5)
        with pytest.raises(ServerStartError, match=r"not ready within 1 s .*decode http://127.0.0.1:9: the server"):
            wait_for_remotes([Remote("decode", ready), Remote("decode", "http://127.0.0.1:9")], "m", deadline_s=1)


def test_deploy_up_starts_that_nodes_instances_and_stops_them_on_sigterm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from harness.deploy import command

    def interrupted() -> None:
        raise KeyboardInterrupt("signal 15")  # what SIGTERM raises (harness.runtime.interrupt)

    monkeypatch.setenv("LLMQUAL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(command, "wait_until_interrupted", interrupted)
    monkeypatch.setattr(command, "sigterm_interrupts", lambda: None)
    Recorder.events = []
    args = argparse.Namespace(plan=str(_two_nodes(tmp_path)), node=1)
    assert command._cmd_up(args, factory=Recorder) == 0
    assert Recorder.events == ["start 8200", "start 8201", "stop 8201", "stop 8200"], "node 1's instances only"
    tables = list((tmp_path / "cache" / "logs").rglob("ranktable.json"))
    assert [json.loads(t.read_text())["server_count"] for t in tables] == ["2"], "the whole deployment's table"
    assert main(["deploy", "up", "--plan", str(_two_nodes(tmp_path / "x")), "--node", "2"]) == 2
    assert "--node 2: the plan has nodes 0..1" in capsys.readouterr().err
