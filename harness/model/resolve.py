"""From a plan's `model` section to a folder a server can load."""

from __future__ import annotations

from pathlib import Path

from harness.config.plan import Plan
from harness.errors import PlanError
from harness.model.tiny import ensure_tiny_model


def base_model(plan: Plan, cache: Path) -> Path:
    """The model the plan starts from: the tiny model as built (random weights) or the plan's `model.path`."""
    if plan.model.tiny is not None:
        return ensure_tiny_model(plan.model.tiny, cache)
    path = plan.model_path()
    if path is None:  # unreachable: the plan validator demands one of the two
        raise PlanError(plan.source, "model", "no model given", "set model.path or model.tiny")
    return path


def resolve_model(plan: Plan, cache: Path) -> Path:
    """The model folder the plan serves: with `model.tiny.trained`, the checkpoint of the plan's own tiny training
    run (trained on first use, then cached); otherwise the base model. A plan that serves an external launcher's
    checkpoint is served by the pytest plugin (`served_model`), which trains in the session first."""
    if plan.serves_external_training:
        raise PlanError(
            plan.source,
            "model.tiny.trained",
            "the served model is the checkpoint this plan's LLaMA-Factory run leaves in a pytest run's folder",
            "run the plan's suites with pytest (the run trains first), or serve that checkpoint with model.path",
        )
    base = base_model(plan, cache)
    if plan.model.tiny is None or not plan.model.tiny.trained:
        return base
    from harness.training.tiny_trainer import tiny_config, trained_run

    assert plan.suites.training is not None  # the plan validator demands it with `trained`
    run = trained_run(base, cache, tiny_config(plan.suites.training))
    assert run.checkpoint is not None  # the tiny launcher always leaves one
    return run.checkpoint
