"""The server pool shares servers by configuration, bounds how many run, and remembers failures."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from harness.config.plan import ServerSpec
from harness.errors import ServerStartError
from harness.runtime.leases import DeviceLease, LeaseError
from harness.server.pool import ServerPool, ServerRestarted
from harness.server.vllm import ServerConfig, VLLMServer


class FakeServer(VLLMServer):
    """Records its lifecycle instead of starting vLLM."""

    events: list[str] = []  # noqa: RUF012 - shared log of every fake's lifecycle
    fail = False
    trouble: str | None = None  # what `problem` says once started

    def problem(self, probe_timeout_s: float = 10.0) -> str | None:
        return self.trouble

    def __enter__(self) -> FakeServer:
        self.events.append(f"start {self.config.served_model_name}")
        if self.fail:
            raise ServerStartError("planted start failure", "log tail")
        return self

    def stop(self) -> None:
        self.events.append(f"stop {self.config.served_model_name}")


def config(name: str) -> ServerConfig:
    return ServerConfig("cpu", Path("/m"), ServerSpec(served_model_name=name))


@pytest.fixture(autouse=True)
def fresh_events() -> None:
    FakeServer.events = []
    FakeServer.fail = False


def test_same_configuration_shares_one_server(tmp_path: Path) -> None:
    with ServerPool(tmp_path, factory=FakeServer) as pool:
        assert pool.get(config("a")) is pool.get(config("a"))
    assert FakeServer.events == ["start a", "stop a"]


def test_a_server_that_died_between_tests_is_started_again_with_a_warning(tmp_path: Path) -> None:
    with ServerPool(tmp_path, factory=FakeServer) as pool:
        first = pool.get(config("a"))
        assert isinstance(first, FakeServer)
        first.trouble = "its process exited with code -9"  # planted: killed between two tests
        with pytest.warns(ServerRestarted, match="the a server .* was restarted: its process exited with code -9"):
            second = pool.get(config("a"))
        assert second is not first
        assert pool.get(config("a")) is second
    assert FakeServer.events == ["start a", "stop a", "start a", "stop a"]
    assert [r["reason"] for r in pool.restarts] == ["its process exited with code -9"]


def test_at_most_max_live_servers_run(tmp_path: Path) -> None:
    with ServerPool(tmp_path, max_live=1, factory=FakeServer) as pool:
        pool.get(config("a"))
        pool.get(config("b"))
        pool.get(config("a"))
    assert FakeServer.events == ["start a", "stop a", "start b", "stop b", "start a", "stop a"]


def test_close_stops_every_live_server(tmp_path: Path) -> None:
    pool = ServerPool(tmp_path, max_live=2, factory=FakeServer)
    pool.get(config("a"))
    pool.get(config("b"))
    pool.close()
    assert sorted(FakeServer.events[2:]) == ["stop a", "stop b"]
    assert len(pool.started) == 2


def test_a_failed_start_is_not_retried_per_test(tmp_path: Path) -> None:
    FakeServer.fail = True
    pool = ServerPool(tmp_path, factory=FakeServer)
    for _ in range(3):
        with pytest.raises(ServerStartError, match="planted start failure"):
            pool.get(config("a"))
    assert FakeServer.events == ["start a"]


class EnvRecordingServer(FakeServer):
    def __enter__(self) -> FakeServer:
        self.events.append(
            f"start {self.config.served_model_name} {self.config.process_env().get('ASCEND_RT_VISIBLE_DEVICES')}"
        )
        if self.fail:
            raise ServerStartError("planted start failure", "log tail")
        return self


def npu(name: str, devices: tuple[int, ...], tp: int = 2) -> ServerConfig:
    return ServerConfig("npu", Path("/m"), ServerSpec(served_model_name=name, tensor_parallel_size=tp, devices=devices))


def test_npu_servers_lease_their_cards_and_give_them_back(tmp_path: Path) -> None:
    leases = tmp_path / "leases"
    with ServerPool(tmp_path, max_live=2, factory=EnvRecordingServer, lease_dir=leases, lease_timeout_s=0.2) as pool:
        pool.get(npu("a", (0, 1, 2, 3)))
        pool.get(npu("b", (0, 1, 2, 3)))
        assert FakeServer.events == ["start a 0,1", "start b 2,3"], "disjoint cards for two live servers"
        with pytest.raises(LeaseError, match="no 2 free npu devices"):
            ServerPool(tmp_path, factory=EnvRecordingServer, lease_dir=leases, lease_timeout_s=0.2).get(
                npu("c", (0, 1, 2, 3))
            )
    # The pool is closed: every card is free again.
    with DeviceLease(leases, "npu", [0, 1, 2, 3], 4, timeout_s=1) as lease:
        assert lease.devices == [0, 1, 2, 3]


def test_a_lease_that_could_not_be_had_fails_later_tests_at_once(tmp_path: Path) -> None:
    """An over-subscribed pytest-xdist worker: the cards are held by another; the second test must not wait out
    the lease deadline again."""
    leases = tmp_path / "leases"
    with DeviceLease(leases, "npu", [0, 1], 2, timeout_s=1):  # another worker holds both cards
        pool = ServerPool(tmp_path, factory=EnvRecordingServer, lease_dir=leases, lease_timeout_s=0.5)
        with pytest.raises(LeaseError):
            pool.get(npu("a", (0, 1)))
        started = time.monotonic()
        with pytest.raises(LeaseError, match="no 2 free npu devices"):
            pool.get(npu("a", (0, 1)))
        assert time.monotonic() - started < 0.1


def test_each_xdist_worker_logs_to_files_of_its_own(tmp_path: Path) -> None:
    with ServerPool(tmp_path, factory=FakeServer, log_prefix="gw1-") as pool:
        server = pool.get(config("org/model"))
    assert server.log_path.parent == tmp_path
    assert server.log_path.name.startswith("gw1-vllm-org_model-")


def test_a_failed_start_releases_its_lease(tmp_path: Path) -> None:
    EnvRecordingServer.fail = True
    pool = ServerPool(tmp_path, factory=EnvRecordingServer, lease_dir=tmp_path / "l", lease_timeout_s=0.2)
    with pytest.raises(ServerStartError):
        pool.get(npu("a", (0, 1), tp=2))
    with DeviceLease(tmp_path / "l", "npu", [0, 1], 2, timeout_s=1):
        pass
    assert "ASCEND_RT_VISIBLE_DEVICES" not in config("cpu-server").process_env(), "cpu servers lease nothing"


class Watch:
    """Records when it is entered and exited, into the fakes' shared lifecycle log."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> Watch:
        FakeServer.events.append(f"watch {self.name}")
        return self

    def __exit__(self, *exc_info: object) -> None:
        FakeServer.events.append(f"unwatch {self.name}")


def test_an_attached_context_runs_once_while_its_server_runs(tmp_path: Path) -> None:
    with ServerPool(tmp_path, factory=FakeServer) as pool:
        a = pool.get(config("a"))
        pool.attach(a, lambda: Watch("a"))
        pool.attach(a, lambda: Watch("a again"))  # a second test of the same server: already watched
        pool.get(config("b"))  # one live server: a stops, its watch first
        pool.attach(a, lambda: Watch("stale"))  # a server the pool no longer runs is not watched
    assert FakeServer.events == ["start a", "watch a", "unwatch a", "stop a", "start b", "stop b"]
