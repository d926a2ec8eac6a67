"""A plan's accuracy sections as evaluation settings, task folders and baselines."""

from __future__ import annotations

from pathlib import Path

from harness.accuracy.evaluate import EvalSettings
from harness.accuracy.tasks import materialise
from harness.config.plan import Plan
from harness.config.suites import AccuracySpec, TaskSpec


def eval_settings(spec: AccuracySpec, task: TaskSpec) -> EvalSettings:
    return EvalSettings(
        num_fewshot=task.num_fewshot,
        limit=int(task.limit) if task.limit is not None and task.limit >= 1 else task.limit,
        batch_size=spec.batch_size,
        num_concurrent=spec.num_concurrent,
        max_retries=spec.max_retries,
        timeout_s=spec.timeout_s,
        chat=task.chat,
        log_samples=spec.log_samples,
    )


def include_folder(plan: Plan, cache: Path) -> Path | None:
    """The plan's task folder, materialised with absolute data paths; None when the plan names none."""
    spec = plan.suites.accuracy
    if spec is None or spec.include_path is None:
        return None
    return materialise(plan.relative(spec.include_path), cache)


def plan_tasks(plan: Plan) -> list[TaskSpec]:
    return list(plan.suites.accuracy.tasks) if plan.suites.accuracy else []
