"""Who listens on a port, from /proc: readiness must come from the server the harness started."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from harness.runtime.sockets import listening_pids
from harness.server.readiness import NotReady, require_own_listener

LISTENER = "import socket, sys, time; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); " \
    "print(s.getsockname()[1], flush=True); time.sleep(60)"  # fmt: skip


def test_this_process_is_found_listening_on_its_port() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        assert os.getpid() not in listening_pids(port), "bound but not listening yet"
        listener.listen()
        assert os.getpid() in listening_pids(port)


def test_a_port_answered_by_another_process_group_is_not_our_server() -> None:
    child = subprocess.Popen([sys.executable, "-c", LISTENER], stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        require_own_listener(port, child.pid)  # the group that was started: fine
        with socket.socket() as squatter:  # planted: a port whose listener is someone else (this test process)
            squatter.bind(("127.0.0.1", 0))
            squatter.listen()
            other = squatter.getsockname()[1]
            with pytest.raises(
                NotReady, match=f"port {other} is answered by process.*{os.getpid()}.*not by the server"
            ):
                require_own_listener(other, child.pid)
    finally:
        child.kill()
        child.wait()
