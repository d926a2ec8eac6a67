"""SIGTERM handled as Ctrl-C: the harness's `with` blocks (servers, deployments, containers) then stop what they
started on SIGTERM too, also while they wait for readiness."""

from __future__ import annotations

import signal
import threading
from types import FrameType


def raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def sigterm_interrupts() -> None:
    """From now on SIGTERM raises KeyboardInterrupt in the main thread."""
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)


def wait_until_interrupted() -> None:
    """Block until Ctrl-C or SIGTERM (with `sigterm_interrupts`) raises KeyboardInterrupt."""
    threading.Event().wait()
