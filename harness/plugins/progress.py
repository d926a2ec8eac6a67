"""Progress of long serving cases on the terminal, and the load settings that carry it to the cases.

On a terminal, a line at most every 15 s; in a log (not a TTY), one line when a measurement that took 15 s or
more ends. Other libraries' progress bars (lm-eval's, vLLM's) are left as they are: turning tqdm off for the
children (TQDM_DISABLE) breaks vLLM 0.32's offline generate, which divides by the bar's elapsed time.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable

import pytest

from harness.bench.cases import LoadSettings
from harness.bench.from_plan import load_settings
from harness.config.plan import Plan
from harness.plugins.stash import PROGRESS_KEY


class TerminalProgress:
    """Progress of long cases on the terminal, through pytest's capture: at most one line per `every_s`."""

    def __init__(
        self,
        config: pytest.Config,
        every_s: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
        tty: bool | None = None,
    ):
        self.config, self.every_s, self.clock = config, every_s, clock
        self.tty = sys.stdout.isatty() if tty is None else tty
        self.started: dict[str, float] = {}
        self.last = clock()

    def __call__(self, case_id: str, done: int, total: int) -> None:
        now = self.clock()
        if done == 1 or case_id not in self.started:  # a measurement (or a repeat) begins
            self.started[case_id] = now
        started = self.started[case_id]
        if not self.tty:  # a log file or CI: a line when a long measurement ends, never a stream of updates
            if done != total or now - started < self.every_s:
                return
        elif now - self.last < self.every_s:
            return
        self.last = now
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        if reporter is None or capture is None:
            return
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"  ... {case_id}: {done}/{total} requests in {now - started:.0f} s")


@pytest.fixture
def load(request: pytest.FixtureRequest, plan: Plan) -> LoadSettings:
    """How the plan's serving cases send their requests; long cases report progress on the terminal."""
    if PROGRESS_KEY not in request.config.stash:
        printer: Callable[[str, int, int], None] = TerminalProgress(request.config)
        request.config.stash[PROGRESS_KEY] = printer
    progress = request.config.stash[PROGRESS_KEY]
    return dataclasses.replace(load_settings(plan), progress=progress)
