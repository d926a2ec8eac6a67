"""What every training launcher makes: a `Launch` (the command, its environment, where its log and checkpoint will
be), and the error a preparer raises for a plan key it cannot use."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError


class LaunchConfigError(HarnessError):
    """Raised by a preparer; `prepare` turns it into a PlanError naming the plan file."""

    def __init__(self, key: str, problem: str, fix: str) -> None:
        self.key, self.problem, self.fix = key, problem, fix
        super().__init__(f"suites.training.{key}: {problem}")


@dataclass(frozen=True)
class Launch:
    launcher: str
    argv: list[str]
    env: dict[str, str]  # added to the harness's environment
    cwd: Path
    console: Path  # the process's stdout and stderr
    log: Path  # the file the loss curve is parsed from
    log_format: str
    checkpoint: Path | None
    written: tuple[Path, ...]  # files the harness generated for this launch
    expected_steps: int | None = None  # the steps the run is configured for (None: the framework decides)


Resolve = Callable[[str], Path]  # a path from the plan, resolved against the plan's folder


def require_command(argv: list[str], key: str) -> None:
    if shutil.which(argv[0]) is None:
        raise LaunchConfigError(key, f"{argv[0]!r} is not on PATH", "install the framework or give its full path")
