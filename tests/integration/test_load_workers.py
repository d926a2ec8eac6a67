"""Load workers as processes (harness.load.workers) against the fake server: one schedule from several
processes, the API key never on a command line, a worker that dies fails the case and leaves nothing behind."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from harness.load.loops import OpenLoop
from harness.load.schedule import arrival_offsets
from harness.load.workers import WorkerFailed, run_sharded
from harness.runtime.process import ManagedProcess
from harness.server.endpoint import Endpoint
from tests.integration.procs import REPO

pytestmark = pytest.mark.integration


@pytest.fixture
def fake(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Endpoint]:
    mode = getattr(request, "param", "fast")
    port_file = tmp_path / "url"
    argv = [sys.executable, "-m", "tests.fakes", "--mode", mode, "--port-file", str(port_file)]
    with ManagedProcess(argv, tmp_path / "fake.log", cwd=REPO, stop_grace_s=5):
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text():
            assert time.monotonic() < deadline, "the fake server did not start"
            time.sleep(0.05)
        yield Endpoint(port_file.read_text(), "fake", api_key="sk-worker-secret")


def workers_of_this_process() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            parent = next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:"))
            if int(parent) == os.getpid() and b"harness.load.workers" in cmdline:
                found.append(int(entry.name))
    return found


def test_one_schedule_sent_from_three_processes(fake: Endpoint) -> None:
    offsets = tuple(float(o) for o in arrival_offsets(300, 300.0, 1.0, np.random.default_rng(1)))
    payloads = [{"prompt": f"p{i}", "max_tokens": 8, "stream": True} for i in range(300)]
    seen: list[bytes] = []

    def watch() -> None:  # the workers' command lines, while they run
        for _ in range(100):
            for pid in workers_of_this_process():
                seen.append(Path(f"/proc/{pid}/cmdline").read_bytes())
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    sharded = run_sharded(fake, "completions", 30.0, 60.0, OpenLoop(offsets), payloads, 3, (0,))
    watcher.join()
    assert seen, "the workers were seen running"
    assert not any(b"sk-worker-secret" in cmdline for cmdline in seen)
    records = sharded.records
    assert len(records) == 300
    assert all(r.ok and len(r.content_times) == 8 for r in records)
    start = records[0].scheduled
    assert start is not None
    # Each request went out at its place in the one global schedule, whichever process sent it.
    assert [round(r.scheduled - start, 6) for r in records if r.scheduled is not None] == [
        round(o - offsets[0], 6) for o in offsets
    ]
    assert [len(p) for p in sharded.parts] == [100, 100, 100]
    assert workers_of_this_process() == []


@pytest.mark.parametrize("fake", ["stalls"], indirect=True)
def test_a_worker_that_dies_fails_the_case_and_the_others_are_stopped(fake: Endpoint) -> None:
    payloads = [{"prompt": "x", "max_tokens": 3, "stream": True}] * 40

    def kill_one() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            pids = workers_of_this_process()
            if len(pids) == 2:
                time.sleep(0.5)  # both are sending (every answer stalls for 2 s)
                os.kill(pids[0], 9)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one)
    killer.start()
    with pytest.raises(WorkerFailed, match=r"load worker \d died before it could finish its requests"):
        run_sharded(fake, "completions", 30.0, 60.0, OpenLoop((0.0,) * 40), payloads, 2, (0,))
    killer.join()
    assert workers_of_this_process() == [], "the surviving worker was stopped too"
