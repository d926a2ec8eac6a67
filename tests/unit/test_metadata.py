"""How the metadata block singles out a container's sockets, and what its probe's outcome means."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config.container import ContainerSpec
from harness.config.plan import load_plan
from harness.errors import PlanError
from harness.runtime.container import Container
from harness.runtime.metadata import MetadataBlockError, choose_match, probe_verdict, rule

HYBRID = "4:memory:/docker/abc\n1:net_cls,net_prio:/docker/abc\n0::/docker/abc\n"
V1_ONLY = "4:memory:/docker/abc\n1:net_cls,net_prio:/docker/abc\n"


def test_a_cgroup_v2_path_is_matched_by_path(tmp_path: Path) -> None:
    chosen = choose_match(HYBRID, 0x11A70001, tmp_path)
    assert chosen.match == ("-m", "cgroup", "--path", "docker/abc")
    assert chosen.classid_file is None


def test_a_cgroup_v1_host_uses_a_net_cls_class_id(tmp_path: Path) -> None:
    (tmp_path / "docker/abc").mkdir(parents=True)
    (tmp_path / "docker/abc/net_cls.classid").write_text("0\n")
    chosen = choose_match(V1_ONLY, 0x11A70001, tmp_path)
    assert chosen.match == ("-m", "cgroup", "--cgroup", "0x11a70001")
    assert chosen.classid_file == tmp_path / "docker/abc/net_cls.classid"
    assert rule("-I", "127.0.0.2", chosen.match)[:8] == [
        "iptables", "-w", "-I", "OUTPUT", "-d", "127.0.0.2", "-m", "cgroup"
    ]  # fmt: skip


@pytest.mark.parametrize("text", [V1_ONLY, "4:memory:/\n1:net_cls:/\n0::/\n"])
def test_no_cgroup_of_its_own_is_refused_with_the_fix(tmp_path: Path, text: str) -> None:
    """v1 without net_cls mounted (no classid file), or a process in the root cgroups."""
    with pytest.raises(MetadataBlockError, match=r"mount -t cgroup -o net_cls .*block-metadata: false"):
        choose_match(text, 0x11A70001, tmp_path)


def test_only_a_prompt_refusal_proves_the_block() -> None:
    assert probe_verdict(1, "bash: connect: Connection refused\n", "169.254.169.254") is None
    assert "succeeded" in str(probe_verdict(0, "", "169.254.169.254"))
    assert "not refused within" in str(probe_verdict(124, "", "169.254.169.254"))
    assert "could not run (exit 127" in str(probe_verdict(127, "bash: not found", "169.254.169.254"))


def test_a_container_whose_block_does_not_hold_is_not_kept(docker_log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_DOCKER_PROBE", "connected")  # planted: the rule did not match the container
    spec = ContainerSpec(image="i", metadata_address="127.0.0.2")
    held = r"to 127.0.0.2 succeeded: the block did not hold"
    with pytest.raises(MetadataBlockError, match=held), Container(spec, []):
        pass
    calls = docker_log.read_text().splitlines()
    assert calls[-1].startswith("rm --force llmqual-"), calls
    rules = (docker_log.parent / "iptables.log").read_text().splitlines()
    assert [r.split()[1] for r in rules] == ["-I", "-D"], "the rule goes with the container"


def test_the_blocked_address_must_be_an_ip_address(tmp_path: Path) -> None:
    plan = tmp_path / "p.yaml"
    plan.write_text("name: p\nplatform: cpu\nmodel: {path: /m}\ncontainer: {image: i, metadata-address: meta}\n")
    with pytest.raises(PlanError, match=r"metadata-address.*'meta' is not an IPv4 address"):
        load_plan(plan)
