"""Preflight checks on planted readings: each finds its fault and says what to do."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness.config.plan import Plan
from harness.platform import preflight
from harness.platform.npu_smi import parse_info
from harness.platform.readings import PreflightError, docker_problems, read_npu_smi

DATA = Path(__file__).parent / "data" / "npu_smi"
QUIRKS = parse_info((DATA / "info_910b4_processes_quirks.txt").read_text())  # NPU 1 is "Warning", processes on 0


def test_an_unhealthy_chip_is_named_with_the_fix() -> None:
    (problem,) = preflight.unhealthy_chips(QUIRKS)
    assert problem.startswith("NPU 1 chip 0 (910B4) reports health Warning")
    assert "npu-smi set -t reset -i 1 -c 0" in problem


def test_card_count() -> None:
    assert preflight.card_count(QUIRKS, 2) == []
    assert "lists 2 NPUs, the plan expects 8" in preflight.card_count(QUIRKS, 8)[0]


def test_foreign_processes_only_on_the_planned_cards() -> None:
    on_zero = preflight.foreign_processes(QUIRKS, [0])
    assert on_zero
    assert all(p.startswith("NPU 0 chip 0 runs pid ") for p in on_zero)
    assert preflight.foreign_processes(QUIRKS, [5]) == []


def test_free_hbm() -> None:
    assert preflight.short_of_hbm(QUIRKS, [0], 40_000) == []  # 65536 - 20701 = 44835 MB free
    (short,) = preflight.short_of_hbm(QUIRKS, [0], 50_000)
    assert "has 44835 MB HBM free, the plan needs 50000 MB" in short


def test_ip_forwarding() -> None:
    assert preflight.ip_forwarding("1\n") == []
    assert "sysctl -w net.ipv4.ip_forward=1" in preflight.ip_forwarding("0\n")[0]


def test_missing_paths() -> None:
    found = {"/usr/local/dcmi": True, "/usr/local/bin/npu-smi": False}
    (problem,) = preflight.missing_paths(found, found)
    assert problem.startswith("/usr/local/bin/npu-smi does not exist")


def test_nics_named_by_hccl_variables() -> None:
    interfaces = ["lo", "eth0", "enp189s0f0"]
    assert preflight.missing_nics({"HCCL_SOCKET_IFNAME": "enp189", "GLOO_SOCKET_IFNAME": "=eth0"}, interfaces) == []
    assert preflight.missing_nics({"TP_SOCKET_IFNAME": "^=docker0"}, interfaces) == [], "exclusions need no NIC"
    (problem,) = preflight.missing_nics({"GLOO_SOCKET_IFNAME": "=eth1,eth0"}, interfaces)
    assert "GLOO_SOCKET_IFNAME==eth1,eth0: no interface named 'eth1'" in problem


CAT, SLEEP = shutil.which("cat"), shutil.which("sleep")


def _tool(folder: Path, name: str, body: str) -> None:
    """A fake command on PATH, the only thing on it (the real tools cannot be made to hang or fail on demand)."""
    script = folder / name
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)


def test_npu_smi_is_read_and_each_failure_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PreflightError, match="npu-smi is not on PATH: install the Ascend driver"):
        read_npu_smi(5)
    _tool(tmp_path, "npu-smi", f"{CAT} {DATA / 'info_910b4_processes_quirks.txt'}")
    assert read_npu_smi(5) == QUIRKS
    _tool(tmp_path, "npu-smi", "echo 'dcmi module initialize failed' >&2; exit 8")
    with pytest.raises(PreflightError, match=r"npu-smi info failed \(8\): dcmi module initialize failed"):
        read_npu_smi(5)
    _tool(tmp_path, "npu-smi", f"exec {SLEEP} 30")
    with pytest.raises(PreflightError, match="did not answer within 1 s: the driver is hung"):
        read_npu_smi(1)


def test_docker_that_is_missing_or_not_answering_is_said(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert docker_problems() == ["docker is not on PATH: install docker (the plan runs its server in a container)"]
    _tool(tmp_path, "docker", "echo 'Cannot connect to the Docker daemon' >&2; exit 1")
    assert "Cannot connect to the Docker daemon" in docker_problems()[0]
    _tool(tmp_path, "docker", "echo 27.1.1")
    assert docker_problems() == []


def test_the_planned_devices_are_the_servers_or_the_first_parallel_ones() -> None:
    base = {"name": "p", "platform": "npu", "model": {"path": "/m"}}
    assert preflight.planned_devices(Plan.model_validate(base)) == [0]
    tp4 = {**base, "server": {"tensor-parallel-size": 4}}
    assert preflight.planned_devices(Plan.model_validate(tp4)) == [0, 1, 2, 3]
    chosen = {**base, "server": {"tensor-parallel-size": 2, "devices": [6, 7]}}
    assert preflight.planned_devices(Plan.model_validate(chosen)) == [6, 7]
