"""Inter-process file locks with a deadline (builds shared by pytest-xdist workers, device leases)."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.errors import HarnessError


class LockTimeout(HarnessError):
    """Another process held the lock past the deadline."""


@contextmanager
def file_lock(path: Path, timeout_s: float, poll_s: float = 0.1) -> Iterator[None]:
    """Hold an exclusive flock on `path` (created if needed) or raise LockTimeout after `timeout_s`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(f"{path} stayed locked by another process for {timeout_s:.0f} s") from None
                time.sleep(poll_s)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
