"""The benchmarks' instant fake server: its own process on the other core, answering every stream at once."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator

import pytest

from harness.runtime.process import ManagedProcess
from harness.server.endpoint import Endpoint
from tests.integration.procs import REPO

FAKE_CPU = 1  # the fake's core; the client under test runs on core 0


@pytest.fixture(scope="module")
def fake_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPUs: one for the fake server, one for the client")
    folder = tmp_path_factory.mktemp("fake")
    port_file = folder / "url"
    argv = [sys.executable, "-m", "tests.fakes", "--mode", "fast", "--port-file", str(port_file)]
    with ManagedProcess([*argv, "--cpu", str(FAKE_CPU)], folder / "fake.log", cwd=REPO, stop_grace_s=5) as process:
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text():
            assert process.returncode() is None, process.log_tail()
            assert time.monotonic() < deadline, "the fake server did not start within 30 s"
            time.sleep(0.05)
        yield Endpoint(port_file.read_text(), "fake")
