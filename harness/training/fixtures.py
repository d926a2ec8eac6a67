"""pytest fixtures of the training suite: the plan's training section and the trained run.

`trained_run` is the run the suite qualifies: a log given with `--training-log` (a run made elsewhere), else the
plan's launcher, run once per session: the embedded tiny run (cached on disk by configuration, data and seed), or
LLaMA-Factory / MindSpeed-LLM as a process whose files and console go to `<run>/training/<launcher>/`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config.plan import Plan
from harness.config.training import TrainingSpec
from harness.errors import HarnessError
from harness.model.resolve import base_model
from harness.paths import inside
from harness.run import Run
from harness.training.curve import TrainedRun
from harness.training.launchers import prepare, run_launch
from harness.training.parsers import PARSERS, LogFormatError, parse_log
from harness.training.tiny_trainer import tiny_config
from harness.training.tiny_trainer import trained_run as tiny_run

RUNS_KEY = pytest.StashKey[dict[str, TrainedRun]]()
FAILED_KEY = pytest.StashKey[dict[str, str]]()  # a run that failed is not tried again by the next test


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("llmqual")
    group.addoption("--training-log", default=None, help="qualify this training log instead of training")
    group.addoption(
        "--training-log-format",
        default="auto",
        help=f"format of --training-log ({', '.join(('auto', *PARSERS))})",
        choices=("auto", *PARSERS),
    )


def pytest_configure(config: pytest.Config) -> None:
    config.stash[RUNS_KEY] = {}
    config.stash[FAILED_KEY] = {}
    given = config.getoption("--training-log", None)
    if given and not config.option.help:
        config.stash[RUNS_KEY]["--training-log"] = external_log(Path(given), config.getoption("--training-log-format"))


def external_log(path: Path, fmt: str) -> TrainedRun:
    """A run made elsewhere, read before anything starts: an unreadable log stops the session up front."""
    try:
        curve = parse_log(path.read_text(encoding="utf-8", errors="replace"), fmt)
    except OSError as exc:
        raise pytest.UsageError(f"--training-log {path}: cannot read it ({exc.strerror})") from exc
    except LogFormatError as exc:
        raise pytest.UsageError(f"--training-log {path}: {exc}") from exc
    return TrainedRun("log", None, curve, path.resolve(), None, path.resolve().parent)


@pytest.fixture
def training_spec(request: pytest.FixtureRequest, plan: Plan) -> TrainingSpec:
    """The plan's training section; a plan without one still qualifies a --training-log with the defaults."""
    if plan.suites.training is not None:
        return plan.suites.training
    if request.config.getoption("--training-log"):
        return TrainingSpec()
    pytest.skip("the plan has no suites.training section and no --training-log was given")


@pytest.fixture
def trained_run(
    request: pytest.FixtureRequest, plan: Plan, training_spec: TrainingSpec, model_cache: Path, llmqual_run: Run
) -> TrainedRun:
    """The training run under qualification: checkpoint (None for a log), loss curve and log path."""
    runs = request.config.stash[RUNS_KEY]
    failed = request.config.stash[FAILED_KEY]
    if "--training-log" in runs:
        return runs["--training-log"]
    if plan.source in failed:
        pytest.fail(f"the training run failed earlier in this session: {failed[plan.source]}", pytrace=False)
    if plan.source not in runs:
        try:
            model = base_model(plan, model_cache)
            if training_spec.launcher == "tiny":
                runs[plan.source] = tiny_run(model, model_cache, tiny_config(training_spec))
            else:
                out = inside(llmqual_run.directory, "training", training_spec.launcher)
                launch = prepare(training_spec, model, plan.relative, out, plan.source)
                runs[plan.source] = run_launch(launch, training_spec.timeout_s)
        except HarnessError as exc:
            failed[plan.source] = str(exc)
            pytest.fail(str(exc), pytrace=False)
    return runs[plan.source]
