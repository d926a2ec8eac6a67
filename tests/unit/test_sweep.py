"""Leftovers of runs that died are found by their owner token and stopped; live owners' processes are not."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from harness.config.container import ContainerSpec
from harness.runtime.container import Container
from harness.runtime.sweep import OWNER_ENV, orphans, owner_alive, owner_token, sweep_containers, sweep_processes


def dead_owner() -> str:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    token = owner_token(child.pid)
    child.wait()
    return token


def test_an_owner_is_its_pid_and_start_time() -> None:
    assert owner_alive(owner_token())
    assert not owner_alive(dead_owner())
    pid, _, ticks = owner_token().partition(":")
    assert not owner_alive(f"{pid}:{int(ticks) + 1}"), "a reused pid is another process"


def test_processes_of_a_dead_owner_are_stopped_and_a_live_owners_are_not() -> None:
    sleeper = [sys.executable, "-c", "import time; time.sleep(600)"]
    # a group of a parent and its child, as a server and its engine, or bash and a training grandchild
    grandparent = ["bash", "-c", f"{sys.executable} -c 'import time; time.sleep(600)' & wait"]
    env = {**os.environ, OWNER_ENV: dead_owner()}
    left = subprocess.Popen(grandparent, env=env, start_new_session=True)
    mine = subprocess.Popen(sleeper, env={**os.environ, OWNER_ENV: owner_token()}, start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while len([o for o in orphans() if o.pgid == left.pid]) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert {o.pgid for o in orphans()} == {left.pid}
        stopped = sweep_processes()
        assert len(stopped) == 2
        assert "of dead run owner" in stopped[0]
        assert left.wait(timeout=15) is not None
        assert orphans() == []
        assert mine.poll() is None, "a live owner's process is not touched"
    finally:
        for proc in (left, mine):
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
            proc.wait()


def test_containers_of_a_dead_owner_are_removed(docker_log: Path) -> None:
    log = docker_log
    spec = ContainerSpec(image="img:1")
    live = Container(spec, [0]).__enter__()
    dead = Container(spec, [1])
    dead.labels["llmqual.owner"] = dead_owner()  # planted: as if started by a run that was killed
    dead.__enter__()
    try:
        assert sweep_containers() == [f"container {dead.name} of dead run owner {dead.labels['llmqual.owner']}"]
        assert Path(f"{log}.containers").read_text().split("\t")[0] == live.name
    finally:
        live.__exit__(None, None, None)
