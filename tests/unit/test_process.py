"""Process groups are stopped whole, stubborn members included (real processes, a few seconds)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from harness.runtime.process import ManagedProcess, group_members, tail

# A leader with two children; one child ignores SIGTERM so only SIGKILL can end it.
FAMILY = "sleep 300 & sh -c 'trap \"\" TERM; while true; do sleep 1; done' & echo started; wait"


def wait_for(predicate: object, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_stop_kills_the_whole_group_including_sigterm_ignorers(tmp_path: Path) -> None:
    process = ManagedProcess(["sh", "-c", FAMILY], tmp_path / "log", stop_grace_s=1.0)
    with process:
        pgid = process.pid
        assert os.getpgid(pgid) == pgid  # its own group
        wait_for(lambda: len(group_members(pgid)) >= 3)
        assert process.returncode() is None
    assert group_members(pgid) == []
    assert "started" in tail(tmp_path / "log", 5)


def test_the_group_is_stopped_when_the_body_raises(tmp_path: Path) -> None:
    process = ManagedProcess(["sleep", "300"], tmp_path / "log")

    def body() -> None:
        with process:
            raise RuntimeError("test body failed")

    with pytest.raises(RuntimeError, match="test body failed"):
        body()
    assert group_members(process.pid) == []


def test_exit_code_and_log(tmp_path: Path) -> None:
    with ManagedProcess(["sh", "-c", "echo one; echo two >&2; exit 3"], tmp_path / "log") as process:
        wait_for(lambda: process.returncode() is not None)
        assert process.returncode() == 3
    assert tail(tmp_path / "log", 2).splitlines() == ["one", "two"]


def test_tail_of_a_missing_file_is_empty(tmp_path: Path) -> None:
    assert tail(tmp_path / "none", 5) == ""


def test_a_niced_process_and_its_children_run_below_the_harness(tmp_path: Path) -> None:
    """The process, what it starts, and (where the kernel has autogroups) its session run at the given nice."""
    script = "sleep 30 & wait"
    with ManagedProcess(["bash", "-c", script], tmp_path / "log", nice=10) as proc:
        deadline = time.monotonic() + 10
        while len(group_members(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        members = group_members(proc.pid)
        assert len(members) == 2, "bash and its sleep"
        own = os.getpriority(os.PRIO_PROCESS, 0)
        for pid in members:
            assert os.getpriority(os.PRIO_PROCESS, pid) == own + 10
        autogroup = Path(f"/proc/{proc.pid}/autogroup")
        if autogroup.exists():
            assert autogroup.read_text().split()[-1] == "10", autogroup.read_text()


def test_a_placed_process_and_its_children_run_on_its_cores(tmp_path: Path) -> None:
    """`cpus` is the affinity of the process and everything it starts (how server.cpus places a server)."""
    core = max(os.sched_getaffinity(0))
    with ManagedProcess(["bash", "-c", "sleep 30 & wait"], tmp_path / "log", cpus=[core]) as proc:
        wait_for(lambda: len(group_members(proc.pid)) == 2)
        for pid in group_members(proc.pid):
            assert os.sched_getaffinity(pid) == {core}
    assert os.sched_getaffinity(0) != {core} or len(os.sched_getaffinity(0)) == 1, "the harness itself stays put"
