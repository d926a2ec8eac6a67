"""Preflight: the checks an engineer makes by hand on an Ascend node before a run, one test each.

Run them alone first on a new node: `pytest suites/preflight -m npu --plan fixtures/plans/<plan>.yaml`. Each
failure says what is wrong and what to do. They only make sense on an Ascend node: other platforms skip.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.config.plan import Plan, PlatformName
from harness.platform import preflight
from harness.platform.npu_smi import NpuSmiInfo
from harness.platform.readings import PreflightError, docker_problems, read_npu_smi
from harness.runtime.container import DRIVER_MOUNTS, Container
from harness.runtime.metadata import probe_argv, probe_verdict

pytestmark = [pytest.mark.preflight, pytest.mark.platforms("npu")]


@pytest.fixture
def ascend_plan(target_platform: PlatformName, plan: Plan) -> Plan:
    assert target_platform == "npu"  # the only variant of these tests
    return plan


@pytest.fixture
def smi(ascend_plan: Plan) -> NpuSmiInfo:
    try:
        return read_npu_smi(ascend_plan.suites.preflight.smi_timeout_s)
    except PreflightError as exc:
        pytest.fail(str(exc), pytrace=False)


def test_every_chip_is_healthy(smi: NpuSmiInfo) -> None:
    assert smi.chips, "npu-smi info listed no chips"
    problems = preflight.unhealthy_chips(smi)
    assert not problems, "\n".join(problems)


def test_expected_card_count(ascend_plan: Plan, smi: NpuSmiInfo) -> None:
    expected = ascend_plan.suites.preflight.npu_count
    if expected is None:
        pytest.skip("the plan sets no suites.preflight.npu-count")
    problems = preflight.card_count(smi, expected)
    assert not problems, "\n".join(problems)


def test_planned_cards_run_no_foreign_processes(ascend_plan: Plan, smi: NpuSmiInfo) -> None:
    problems = preflight.foreign_processes(smi, preflight.planned_devices(ascend_plan))
    assert not problems, "\n".join(problems)


def test_planned_cards_have_free_hbm(ascend_plan: Plan, smi: NpuSmiInfo) -> None:
    problems = preflight.short_of_hbm(
        smi, preflight.planned_devices(ascend_plan), ascend_plan.suites.preflight.min_free_hbm_mb
    )
    assert not problems, "\n".join(problems)


def test_docker_answers_when_the_plan_uses_containers(ascend_plan: Plan) -> None:
    if ascend_plan.container is None:
        pytest.skip("the plan runs no container")
    problems = docker_problems()
    assert not problems, "\n".join(problems)


def test_containers_cannot_reach_the_metadata_address(ascend_plan: Plan) -> None:
    """A container started as the harness starts them: with the block on, starting it proves the block (the
    harness connects from inside and requires the rule's refusal); with it off, the node itself must refuse."""
    spec = ascend_plan.container
    if spec is None:
        pytest.skip("the plan runs no container")
    with Container(spec, preflight.planned_devices(ascend_plan)[:1]) as container:
        done = container.run_inside(probe_argv(spec.metadata_address))
    problem = probe_verdict(done.returncode, done.stderr, spec.metadata_address)
    assert problem is None, (
        f"{problem}: set container.block-metadata: true in the plan (an iptables rule for the container's cgroup), "
        "or add the node-wide rule of your cloud's procedure"
    )


def test_ip_forwarding_is_on(ascend_plan: Plan) -> None:
    path = Path("/proc/sys/net/ipv4/ip_forward")
    problems = preflight.ip_forwarding(path.read_text() if path.exists() else "")
    assert not problems, "\n".join(problems)


def test_driver_and_npu_smi_paths_exist_for_mounting(ascend_plan: Plan) -> None:
    problems = preflight.missing_paths(DRIVER_MOUNTS, {p: os.path.exists(p) for p in DRIVER_MOUNTS})
    assert not problems, "\n".join(problems)


def test_cluster_nics_exist_for_multi_node_plans(ascend_plan: Plan) -> None:
    if ascend_plan.deployment is None or len(ascend_plan.deployment.nodes) < 2:
        pytest.skip("a single-node plan needs no cluster network")
    interfaces = os.listdir("/sys/class/net")
    problems = preflight.missing_nics(os.environ, interfaces)
    assert not problems, "\n".join(problems)
