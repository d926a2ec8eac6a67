"""A training run's loss curve, whatever framework wrote the log."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class LossPoint:
    """One logged training step. Fields a log does not carry are None; fields we do not know are in `extra`."""

    step: int
    loss: float | None
    learning_rate: float | None = None
    grad_norm: float | None = None
    elapsed_ms: float | None = None  # time of this iteration
    tokens: float | None = None  # consumed (or total) tokens so far
    global_batch_size: int | None = None
    skipped: int | None = None  # skipped iterations reported at this step
    nan: int | None = None  # NaN iterations reported at this step
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EvalPoint:
    step: int
    loss: float
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LossCurve:
    format: str
    points: list[LossPoint]
    eval_points: list[EvalPoint] = field(default_factory=list)

    def losses(self) -> list[float]:
        return [p.loss for p in self.points if p.loss is not None]

    def series(self) -> list[list[float | None]]:
        """[[step, loss], ...]: the curve as a case document's plot series."""
        return [[p.step, p.loss] for p in self.points]

    def losses_only(self) -> LossCurve:
        """Steps and losses without timing or counters: what a reviewable reference curve keeps."""
        return LossCurve(
            self.format,
            [LossPoint(p.step, p.loss) for p in self.points],
            [EvalPoint(p.step, p.loss) for p in self.eval_points],
        )

    def as_json(self) -> dict[str, Any]:
        """The `llmqual train parse-log --json` document; None fields are left out of each point."""

        def compact(point: Any) -> dict[str, Any]:
            data = dataclasses.asdict(point)
            extra = data.pop("extra")
            return {**{k: v for k, v in data.items() if v is not None}, **({"extra": extra} if extra else {})}

        return {
            "format": self.format,
            "points": [compact(p) for p in self.points],
            "eval_points": [compact(p) for p in self.eval_points],
        }


@dataclass(frozen=True)
class TrainedRun:
    """What a launcher leaves: the checkpoint (None for a log made elsewhere), the curve and the log it came from."""

    launcher: str
    checkpoint: Path | None
    curve: LossCurve
    log_path: Path
    wall_s: float | None
    folder: Path
    reused: bool = False  # read back from the cache: not a new measurement (baselines must not count it again)
    expected_steps: int | None = None  # the steps the run was configured for; None when not known (a given log)

    def case_config(self, settings: dict[str, Any]) -> dict[str, Any]:
        """A training case's configuration: the run (launcher, log, checkpoint, reused) and its `settings`."""
        run = {"launcher": self.launcher, "log": str(self.log_path), "checkpoint": str(self.checkpoint)}
        return {**run, "reused_run": self.reused, **settings}
