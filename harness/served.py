"""What a plan serves: the model folder (trained first when the plan serves its own training run's checkpoint)
and the server configuration (with the EAGLE draft head the plan trains, when it has one).

It sits above the training code it may run, so the model and server packages below need not import training.
"""

from __future__ import annotations

from pathlib import Path

from harness.config.plan import Plan
from harness.errors import PlanError
from harness.model.resolve import base_model
from harness.server.vllm import ServerConfig, server_config
from harness.training.eagle import ensure_eagle_draft
from harness.training.tiny_trainer import tiny_config, trained_run


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
    assert plan.suites.training is not None  # the plan validator demands it with `trained`
    run = trained_run(base, cache, tiny_config(plan.suites.training))
    assert run.checkpoint is not None  # the tiny launcher always leaves one
    return run.checkpoint


def serving_config(plan: Plan, model_path: Path, cache: Path) -> ServerConfig:
    """The server configuration a plan asks for, serving `model_path`; with `model.tiny.eagle`, its speculative
    config names the EAGLE draft head trained for `model_path` (trained first if not cached)."""
    eagle = plan.model.tiny.eagle if plan.model.tiny else None
    draft = None
    if eagle is not None and plan.server.speculative_config is not None:
        draft = ensure_eagle_draft(model_path, eagle, cache)
    return server_config(plan, model_path, cache, draft)
