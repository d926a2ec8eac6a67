"""Device leases: disjoint NPU (or GPU) ids for every server or container the session and its xdist workers start.

One lock file per device (`<leases>/<platform>-<id>.lock`) held with flock: two holders can never bind one card,
and a lease dies with its process whatever the exit path (the kernel drops the lock on exit, SIGKILL included).
A lease waits for enough free devices up to its deadline, then fails naming who holds them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from harness.errors import HarnessError

LEASED_PLATFORMS = ("npu", "gpu")  # whose devices a server holds alone; CPU cores are placed, not leased
DEV = Path("/dev")
DEVICE_FILES = {"npu": "davinci{}", "gpu": "nvidia{}"}  # card N's device file on the host


def absent_cards(platform: str, cards: Sequence[int], dev: Path | None = None) -> list[int]:
    """The cards of `cards` this node does not have (no /dev/davinciN, /dev/nvidiaN); none on the CPU."""
    pattern = DEVICE_FILES.get(platform)
    if pattern is None:
        return []
    return [card for card in cards if not ((dev or DEV) / pattern.format(card)).exists()]


class LeaseError(HarnessError):
    """Not enough free devices before the deadline."""


class DeviceLease:
    """`count` devices of `candidates` for as long as the context lasts."""

    def __init__(
        self,
        folder: Path,
        platform: str,
        candidates: Sequence[int],
        count: int,
        timeout_s: float,
        holder: str = "",
        poll_s: float = 0.1,
    ) -> None:
        if platform not in LEASED_PLATFORMS:
            raise ValueError(f"devices are leased on npu or gpu, not {platform}")
        if not 1 <= count <= len(candidates):
            raise LeaseError(f"asked for {count} {platform} devices out of {list(candidates)}")
        self.folder, self.platform = folder, platform
        self.candidates, self.count = list(candidates), count
        self.timeout_s, self.poll_s = timeout_s, poll_s
        self.holder = holder or f"pid {os.getpid()}"
        self.devices: list[int] = []
        self._fds: dict[int, int] = {}

    def _path(self, device: int) -> Path:
        return self.folder / f"{self.platform}-{device}.lock"

    def _try(self, device: int) -> bool:
        fd = os.open(self._path(device), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{self.holder}\n".encode())
        self._fds[device] = fd
        return True

    def holders(self) -> dict[int, str]:
        """Who holds each candidate device now (as its lock file says), for error messages."""
        found = {}
        for device in self.candidates:
            with contextlib.suppress(OSError):
                found[device] = self._path(device).read_text().strip()
        return found

    def __enter__(self) -> DeviceLease:
        self.folder.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.timeout_s
        while True:
            for device in self.candidates:
                if len(self._fds) == self.count:
                    break
                if device not in self._fds:
                    self._try(device)
            if len(self._fds) == self.count:
                self.devices = sorted(self._fds)
                return self
            # Hold nothing while waiting: two leases each holding half of what they need would wait forever.
            self.release()
            if time.monotonic() >= deadline:
                held = ", ".join(f"{d}: {h}" for d, h in self.holders().items() if h)
                raise LeaseError(
                    f"no {self.count} free {self.platform} devices among {self.candidates} within "
                    f"{self.timeout_s:.0f} s (held: {held or 'unknown'}); stop the other run or lease fewer"
                )
            time.sleep(self.poll_s)

    def release(self) -> None:
        for fd in self._fds.values():
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        self._fds.clear()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
        self.devices = []
