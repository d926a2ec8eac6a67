"""Launchers for training frameworks run as processes: LLaMA-Factory (training.llamafactory) and MindSpeed-LLM /
ModelLink (training.mindspeed).

A launcher turns the plan into the files the framework reads (a YAML and a DeepSpeed config, or a copy of a shell
script with its variables set) and a `Launch`: the command, its environment, and where the loss log will be.
`run_launch` runs it in its own process group under a deadline and parses the log. Everything a launch needs is
checked by `prepare` before the process starts, with the plan key to fix named.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

from harness.config.training import TrainingSpec
from harness.errors import PlanError, ProcessFailed, TrainingError
from harness.runtime import process
from harness.training.curve import TrainedRun
from harness.training.launch import Launch, LaunchConfigError, Resolve
from harness.training.llamafactory import llamafactory_launch, prepare_llamafactory
from harness.training.mindspeed import mindspeed_launch, prepare_mindspeed
from harness.training.parsers import LogFormatError, parse_log

Preparer = Callable[[TrainingSpec, Path, Resolve, Path], Launch]
LAUNCHERS: dict[str, Preparer] = {"llamafactory": prepare_llamafactory, "mindspeed": prepare_mindspeed}
REHEARSED: dict[str, Preparer] = {"llamafactory": llamafactory_launch, "mindspeed": mindspeed_launch}


def prepare(
    training: TrainingSpec, model: Path, resolve: Resolve, out: Path, plan_source: str, rehearse: bool = False
) -> Launch:
    """The launch of `training.launcher`, every input checked; nothing is started. With `rehearse`, nothing is
    checked or written either: the launch as it would be (harness.explain)."""
    try:
        if training.launcher not in LAUNCHERS:
            raise LaunchConfigError("launcher", f"{training.launcher!r} runs in-process", "use " + ", ".join(LAUNCHERS))
        launch = (REHEARSED if rehearse else LAUNCHERS)[training.launcher](training, model, resolve, out)
    except LaunchConfigError as exc:
        raise PlanError(plan_source, f"suites.training.{exc.key}", exc.problem, exc.fix) from exc
    if training.profile:
        # The ModelArts guides' training scripts profile when DO_PROFILER=1, into PROF_SAVE_PATH: kept in the run.
        profiling = out / "profiling"
        env = {**launch.env, "DO_PROFILER": "1", "PROF_SAVE_PATH": str(profiling.resolve())}
        launch = dataclasses.replace(launch, env=env)
    return launch


def run_to_end(
    argv: list[str], console: Path, env: dict[str, str], timeout_s: float, what: str, cwd: Path | None = None
) -> float:
    """Run a training process to its end under a deadline (harness.runtime.process.run_to_end); the wall time in
    seconds. A failure or a timeout is a TrainingError with the console's last 30 lines."""
    try:
        return process.run_to_end(argv, console, env, timeout_s, what, cwd, "suites.training.timeout-s")
    except ProcessFailed as exc:
        raise TrainingError(str(exc)) from exc


def run_launch(launch: Launch, timeout_s: float) -> TrainedRun:
    """Run the launch to the end and parse its log."""
    wall_s = run_to_end(launch.argv, launch.console, launch.env, timeout_s, launch.launcher, launch.cwd)
    try:
        curve = parse_log(launch.log.read_text(encoding="utf-8", errors="replace"), launch.log_format)
    except OSError as exc:
        raise TrainingError(f"{launch.launcher} finished but wrote no log at {launch.log}") from exc
    except LogFormatError as exc:
        raise TrainingError(f"{launch.launcher}'s log {launch.log}: {exc}") from exc
    expected = _planned_steps(launch.log.parent / "trainer_state.json") or launch.expected_steps
    folder = launch.console.parent
    return TrainedRun(launch.launcher, launch.checkpoint, curve, launch.log, wall_s, folder, expected_steps=expected)


def _planned_steps(trainer_state: Path) -> int | None:
    """The `max_steps` a transformers Trainer (LLaMA-Factory's) planned, from the trainer_state.json it writes."""
    try:
        planned = json.loads(trainer_state.read_text(encoding="utf-8")).get("max_steps")
    except (OSError, ValueError, AttributeError):
        return None
    return planned if isinstance(planned, int) and planned > 0 else None
