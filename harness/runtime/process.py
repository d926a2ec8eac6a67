"""Child processes that live in their own process group and are stopped whole, on every exit path.

`ManagedProcess` is a context manager: the process starts in `__enter__` with its output in a log file, and
`__exit__` (or `stop`) sends SIGTERM to the whole group, waits with a deadline, then SIGKILLs what is left. A
registry of live groups is swept at interpreter exit as a last line of defence (for example when pytest is ended
by SIGTERM after the harness turned that signal into an exception).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TextIO

from harness.errors import HarnessError, ProcessFailed
from harness.runtime.sweep import OWNER_ENV, owner_token

_LIVE_GROUPS: set[int] = set()
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask Linux to SIGTERM the child if the harness dies without cleaning up (e.g. SIGKILL)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _lower_priority(nice: int) -> None:  # pragma: no cover - runs in the child between fork and exec
    """Run the child (and everything it starts) at a lower CPU priority than the harness.

    The child has its own session; where the kernel groups sessions for scheduling (autogroup), nice values act
    only inside a group, so the group's own nice is set as well. Without this, on a two-core machine a busy
    server's session took the CPU from the harness's client for 130-360 ms at a time (p99 schedule lag).
    """
    with contextlib.suppress(OSError):
        os.nice(nice)
    with contextlib.suppress(OSError), open("/proc/self/autogroup", "w") as group:
        group.write(str(nice))


def _prepare_child(nice: int, cpus: Sequence[int] | None) -> None:  # pragma: no cover - runs in the child
    die_with_parent()
    if nice:
        _lower_priority(nice)
    if cpus:
        os.sched_setaffinity(0, cpus)  # inherited by everything the child starts


def group_members(pgid: int) -> list[int]:
    """Pids of the live (non-zombie) processes of group `pgid`, read from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the parenthesised command: state ppid pgrp ...
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) >= 3 and fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def kill_group(pgid: int, grace_s: float, poll_s: float = 0.1) -> None:
    """SIGTERM the group, wait up to `grace_s` for it to go, then SIGKILL and wait until it is gone."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pgid, sig)
            if sig == signal.SIGTERM:
                os.killpg(pgid, signal.SIGCONT)  # a stopped (SIGSTOP) group handles SIGTERM only once continued
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait_s
        while group_members(pgid) and time.monotonic() < deadline:
            time.sleep(poll_s)
        if not group_members(pgid):
            break
    _LIVE_GROUPS.discard(pgid)
    if group_members(pgid):
        raise HarnessError(f"process group {pgid} survived SIGKILL (processes stuck in the kernel?)")


@contextlib.contextmanager
def stopped(pgid: int) -> Iterator[None]:
    """The group held stopped (SIGSTOP) for the `with` block and continued on every exit path: an idle server that
    must not take CPU from the one measured beside it. A stopped group takes no CPU and answers nothing."""
    os.killpg(pgid, signal.SIGSTOP)
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGCONT)


@atexit.register
def _sweep_live_groups() -> None:
    for pgid in list(_LIVE_GROUPS):
        with contextlib.suppress(HarnessError):
            kill_group(pgid, grace_s=5.0)


class ManagedProcess:
    """A command in its own process group, its stdout and stderr in `log_path`."""

    def __init__(
        self,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        stop_grace_s: float = 20.0,
        nice: int = 0,
        cpus: Sequence[int] | None = None,
    ) -> None:
        self.argv = list(argv)
        self.nice = nice  # 1-19: the process runs at a lower CPU priority than the harness (its client)
        self.cpus = tuple(cpus) if cpus else None  # the cores the process and its children may run on
        self.log_path = log_path
        # Tagged with its owner (this process): a later run stops it if the harness dies without doing so.
        self.env = {**(os.environ if env is None else env), OWNER_ENV: owner_token()}
        self.cwd = cwd
        self.stop_grace_s = stop_grace_s
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._popen is None:
            raise HarnessError("the process has not been started")
        return self._popen.pid

    def __enter__(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,  # its own session and process group: pgid == pid
                preexec_fn=lambda: _prepare_child(self.nice, self.cpus),
            )
        _LIVE_GROUPS.add(self._popen.pid)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def returncode(self) -> int | None:
        """The exit code if the group leader has exited, else None."""
        return None if self._popen is None else self._popen.poll()

    def stop(self) -> None:
        """Stop the whole group (idempotent) and reap the leader."""
        if self._popen is None:
            return
        kill_group(self._popen.pid, self.stop_grace_s)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._popen.wait(timeout=5.0)

    def log_tail(self, lines: int = 50) -> str:
        """The last `lines` lines of the log (what a failure report shows)."""
        return tail(self.log_path, lines)


def run_to_end(
    argv: Sequence[str],
    log_path: Path,
    env: Mapping[str, str],
    timeout_s: float,
    what: str,
    cwd: Path | None = None,
    deadline_key: str = "",
    follow: TextIO | None = None,
) -> float:
    """Run a command to its end under a deadline, its whole process group stopped on every exit path; the wall
    time in seconds. Its output goes to `log_path` and, with `follow`, is copied there as it comes. A non-zero exit
    or a missed deadline is ProcessFailed with the log's last 30 lines (`deadline_key` names the setting)."""
    started = time.monotonic()
    position = 0
    with ManagedProcess(argv, log_path, env={**os.environ, **env}, cwd=cwd) as proc:
        while (code := proc.returncode()) is None:
            if follow is not None:
                position = _copy_new(log_path, position, follow)
            if time.monotonic() - started > timeout_s:
                setting = f" ({deadline_key})" if deadline_key else ""
                raise ProcessFailed(
                    f"{what} did not finish within {timeout_s:.0f} s{setting}; the end of {log_path}:\n"
                    f"{proc.log_tail(30)}"
                )
            time.sleep(0.2)
        if follow is not None:
            _copy_new(log_path, position, follow)
        if code != 0:
            raise ProcessFailed(f"{what} exited with {code}; the end of {log_path}:\n{proc.log_tail(30)}")
    return time.monotonic() - started


def _copy_new(path: Path, position: int, out: TextIO) -> int:
    """Write what `path` gained since `position` to `out`; the new position."""
    try:
        with path.open("rb") as f:
            f.seek(position)
            data = f.read()
    except OSError:
        return position
    if data:
        out.write(data.decode("utf-8", errors="replace"))
        out.flush()
    return position + len(data)


def tail(path: Path, lines: int) -> str:
    """The last `lines` lines of a text file, decoded leniently; empty if it does not exist."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])
