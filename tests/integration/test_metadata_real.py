"""The metadata-address block with a real Docker engine and Debian's iptables: the rule refuses the container's
connections and not the host's, by the cgroup v2 path (this host is hybrid: docker also places the container in
the unified hierarchy) and by a net_cls class id (how a cgroup v1 host does it). No packet goes to the real metadata
address or off this host: the blocked address is a loopback stand-in, 127.0.0.2, where a host listener counts who
got through."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.config.container import ContainerSpec
from harness.runtime.container import Container
from harness.runtime.metadata import COMMENT, NET_CLS_ROOT, MetadataBlock

pytestmark = pytest.mark.integration

STAND_IN = "127.0.0.2"


class Listener:
    """A TCP listener on the stand-in address that counts the connections it accepts."""

    def __init__(self) -> None:
        self.socket = socket.create_server((STAND_IN, 0))
        self.port = self.socket.getsockname()[1]
        self.accepted = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            self.accepted += 1
            connection.close()

    def close(self) -> None:
        self.socket.close()
        self._thread.join(timeout=5)


@pytest.fixture
def listener() -> Iterator[Listener]:
    if os.geteuid() != 0 or shutil.which("iptables") is None:
        pytest.skip("the block needs root and iptables (scripts/docker-up installs iptables)")
    served = Listener()
    yield served
    served.close()


def _connect_from(container: Container, port: int) -> subprocess.CompletedProcess[str]:
    return container.run_inside(["timeout", "10", "bash", "-c", f"exec 3<>/dev/tcp/{STAND_IN}/{port}"])


def _host_connects(port: int) -> bool:
    with socket.create_connection((STAND_IN, port), timeout=10):
        return True


def _our_rules() -> list[str]:
    rules = subprocess.run(["iptables", "-w", "-S", "OUTPUT"], capture_output=True, text=True, check=True, timeout=30)
    return [line for line in rules.stdout.splitlines() if COMMENT in line]


def test_the_block_refuses_the_container_and_not_the_host(base_image: str, listener: Listener) -> None:
    blocked = ContainerSpec(image=base_image, metadata_address=STAND_IN)  # block-metadata is on by default
    with Container(blocked, [], platform="cpu") as container:  # entering verified the refusal from inside
        assert [r for r in _our_rules() if f"-d {STAND_IN}/32" in r and "--path" in r], _our_rules()
        refused = _connect_from(container, listener.port)
        assert refused.returncode != 0, refused
        assert "Connection refused" in refused.stderr, refused
        assert _host_connects(listener.port)
        with Container(ContainerSpec(image=base_image, block_metadata=False), [], platform="cpu") as free:
            assert _connect_from(free, listener.port).returncode == 0, "without the rule the address is reachable"
    assert listener.accepted == 2, "the host and the unblocked container got through; the blocked one did not"
    assert _our_rules() == [], "the rule went with the container"


@pytest.fixture
def net_cls() -> Iterator[Path]:
    """The net_cls controller mounted where docker looks for it (as on a cgroup v1 host), for containers started
    from now on; unmounted afterwards if this test mounted it."""
    mounted_here = not (NET_CLS_ROOT / "net_cls.classid").exists()
    if mounted_here:
        NET_CLS_ROOT.mkdir(exist_ok=True)
        subprocess.run(["mount", "-t", "cgroup", "-o", "net_cls", "net_cls", str(NET_CLS_ROOT)], check=True,
                       capture_output=True, timeout=30)  # fmt: skip
    yield NET_CLS_ROOT
    if mounted_here:
        subprocess.run(["umount", str(NET_CLS_ROOT)], check=True, capture_output=True, timeout=30)
        NET_CLS_ROOT.rmdir()


def test_a_net_cls_class_id_blocks_as_on_a_cgroup_v1_host(base_image: str, listener: Listener, net_cls: Path) -> None:
    spec = ContainerSpec(image=base_image, block_metadata=False)
    with Container(spec, [], platform="cpu") as container:
        pid = subprocess.run(["docker", "inspect", "--format", "{{.State.Pid}}", container.name], capture_output=True,
                             text=True, check=True, timeout=60).stdout.strip()  # fmt: skip
        with MetadataBlock(int(pid), STAND_IN, mechanism="classid") as block:
            assert block.cgroup.classid_file is not None
            assert net_cls in block.cgroup.classid_file.parents
            block.verify(container.run_inside)
            assert [r for r in _our_rules() if "--cgroup" in r], _our_rules()
            assert "Connection refused" in _connect_from(container, listener.port).stderr
            assert _host_connects(listener.port)
        assert _connect_from(container, listener.port).returncode == 0, "the rule removed, the container connects"
    assert listener.accepted == 2
    assert _our_rules() == []
