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
