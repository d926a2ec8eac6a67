"""Wake an asyncio loop at a due time to within microseconds, with one wake-up and no thread: a Linux timerfd.

asyncio's own timers wake up to a millisecond late (epoll's timeout counts whole milliseconds), which alone would
put an open loop's schedule lag at the limit the client is held to. A timerfd armed for an absolute time on
CLOCK_MONOTONIC (the clock `time.monotonic` reads on Linux) becomes readable when the kernel's high-resolution
timer fires, and the loop wakes from epoll on that readiness: one wake-up per due time, exact to the kernel's timer
slack (50 us by default).

Python gains `os.timerfd_create` only in 3.13, so the three calls are made through libc with ctypes. Where there is
no timerfd (not Linux), `loop_timer` falls back to the loop's own timer, a millisecond coarse.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import ClassVar

CLOCK_MONOTONIC = 1
TFD_NONBLOCK = 0o4000
TFD_CLOEXEC = 0o2000000
TFD_TIMER_ABSTIME = 1


class _Timespec(ctypes.Structure):
    _fields_: ClassVar = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_: ClassVar = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    return libc if hasattr(libc, "timerfd_create") else None


_LIBC = _libc()


class LoopTimer:
    """One timerfd watched by one event loop; one waiter at a time (an open loop has one dispatcher)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        assert _LIBC is not None
        fd = _LIBC.timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create: " + os.strerror(ctypes.get_errno()))
        self.fd = fd
        self.loop = loop
        self._waiter: asyncio.Future[None] | None = None
        self._spec = _Itimerspec()
        loop.add_reader(fd, self._fired)

    def _fired(self) -> None:
        try:
            os.read(self.fd, 8)  # the expiry count; reading it re-arms readiness
        except BlockingIOError:
            return
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def sleep_until(self, due: float) -> None:
        if due <= time.monotonic():
            return
        if self._waiter is not None and not self._waiter.done():
            raise RuntimeError("LoopTimer has one waiter at a time")
        seconds, fraction = divmod(due, 1.0)
        self._spec.it_value.tv_sec = int(seconds)
        self._spec.it_value.tv_nsec = min(int(fraction * 1e9), 999_999_999)
        self._waiter = self.loop.create_future()
        assert _LIBC is not None
        if _LIBC.timerfd_settime(self.fd, TFD_TIMER_ABSTIME, ctypes.byref(self._spec), None) != 0:
            raise OSError(ctypes.get_errno(), "timerfd_settime: " + os.strerror(ctypes.get_errno()))
        try:
            await self._waiter
        finally:
            self._waiter = None

    def close(self) -> None:
        if not self.loop.is_closed():
            self.loop.remove_reader(self.fd)
        os.close(self.fd)


async def coarse_sleep_until(due: float) -> None:
    """The loop's own timer, for where there is no timerfd: never early, up to a millisecond late."""
    while (left := due - time.monotonic()) > 0:  # the timer may round down by a fraction of a millisecond
        await asyncio.sleep(left)


@contextmanager
def loop_timer() -> Iterator[Callable[[float], Awaitable[None]]]:
    """A `sleep_until(due)` for the running loop: returns at `due` on `time.monotonic`'s clock, never before it,
    while the loop serves other tasks. The timerfd is closed on exit."""
    if _LIBC is None:
        yield coarse_sleep_until
        return
    timer = LoopTimer(asyncio.get_running_loop())
    try:
        yield timer.sleep_until
    finally:
        timer.close()
