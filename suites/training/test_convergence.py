"""Training suite: the embedded run (the tiny model, transformers' Trainer on CPU, synthetic instruction data)
converges, resumes where it stopped, and raises accuracy on the task it was taught.

The run is cached by (configuration, data, seed): the first test trains, the others read its curve.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from harness.accuracy.evaluate import EvalSettings, evaluate
from harness.accuracy.scores import scores
from harness.config.plan import Plan
from harness.config.suites import TrainingSpec
from harness.model.resolve import resolve_model
from harness.results.case import CaseResult
from harness.results.sink import CaseSink
from harness.server.endpoint import Endpoint
from harness.training import checks
from harness.training.tiny_trainer import TrainConfig, TrainedRun, train, trained_run

pytestmark = pytest.mark.training


def config_of(spec: TrainingSpec) -> TrainConfig:
    return TrainConfig(
        max_steps=spec.max_steps,
        batch_size=spec.batch_size,
        learning_rate=spec.learning_rate,
        warmup_steps=spec.warmup_steps,
        logging_steps=spec.logging_steps,
        save_steps=spec.save_steps,
        seed=spec.seed,
    )


@pytest.fixture
def spec(plan: Plan) -> TrainingSpec:
    if plan.suites.training is None:
        pytest.skip("the plan has no suites.training run")
    return plan.suites.training


@pytest.fixture
def run(plan: Plan, spec: TrainingSpec, model_cache: Path, case_sink: CaseSink) -> TrainedRun:
    trained = trained_run(resolve_model(plan, model_cache), model_cache, config_of(spec))
    return trained


def test_loss_converges(run: TrainedRun, spec: TrainingSpec, case_sink: CaseSink) -> None:
    verdicts = {
        "finite": checks.finite(run.curve),
        "decreasing": checks.decreasing(run.curve, min_relative_drop=spec.min_relative_drop),
        "spikes": checks.spikes(run.curve, factor=spec.spike_factor),
        "plateau": checks.plateau(run.curve),
        "skipped_nan": checks.skipped_and_nan(run.curve),
    }
    if spec.final_loss_below is not None:
        verdicts["final_loss"] = checks.final_below(run.curve, spec.final_loss_below)
    losses = run.curve.losses()
    case_sink.write(
        CaseResult(
            suite="training.convergence",
            case_id="tiny-sft",
            config={"trainer_state": str(run.log_path), "checkpoint": str(run.checkpoint), **vars(spec)},
            metrics={"first_loss": losses[0], "final_loss": losses[-1], "points": len(losses), "wall_s": run.wall_s},
            checks={name: {"ok": v.ok, "message": v.message} for name, v in verdicts.items()},
        )
    )
    failed = [f"{name}: {v.message}" for name, v in verdicts.items() if not v.ok]
    assert not failed, "\n".join(failed)


def test_resume_continues_the_curve(
    plan: Plan, spec: TrainingSpec, run: TrainedRun, model_cache: Path, tmp_path: Path
) -> None:
    if spec.resume_at is None:
        pytest.skip("the plan sets no suites.training.resume-at")
    base = resolve_model(plan, model_cache)
    config = config_of(spec)
    train(base, tmp_path, config, stop_after=spec.resume_at)
    resumed = train(base, tmp_path, config, resume_from=tmp_path / f"checkpoint-{spec.resume_at}")
    after = [p for p in resumed.points if p.step > spec.resume_at]
    assert after, "the resumed run logged nothing after the checkpoint"
    tail = type(resumed)(resumed.format, after)
    verdict = checks.align(tail, run.curve, max_mre=spec.resume_max_mre, max_mae=1.0)
    assert verdict.ok, "the resumed run does not continue the uninterrupted one: " + verdict.message


def test_training_raised_accuracy(
    plan: Plan,
    spec: TrainingSpec,
    run: TrainedRun,
    endpoint: Endpoint,
    serve: Callable[[Plan], Endpoint],
    lm_eval_include: Path | None,
    tokenizer_path: Path,
    case_sink: CaseSink,
) -> None:
    if spec.eval_task is None:
        pytest.skip("the plan sets no suites.training.eval-task")
    settings = EvalSettings(num_concurrent=4)
    out = case_sink.directory / "training" / "accuracy"
    before = scores(evaluate(endpoint, tokenizer_path, spec.eval_task, lm_eval_include, settings, out / "untrained"))
    trained_plan = plan.model_copy(
        update={"model": plan.model.model_copy(update={"path": str(run.checkpoint), "tiny": None})}
    )
    trained_plan._source = plan.source
    trained_plan = trained_plan.server_with({"served-model-name": "tiny-llama-trained"})
    trained_endpoint = serve(trained_plan)
    after = scores(
        evaluate(trained_endpoint, run.checkpoint, spec.eval_task, lm_eval_include, settings, out / "trained")
    )
    gains = {b.metric: (b.value, a.value) for b, a in zip(before, after, strict=True)}
    case_sink.write(
        CaseResult(
            suite="training.accuracy",
            case_id=spec.eval_task,
            config={"task": spec.eval_task, "checkpoint": str(run.checkpoint)},
            metrics={f"{m}/untrained": b for m, (b, _) in gains.items()}
            | {f"{m}/trained": a for m, (_, a) in gains.items()},
        )
    )
    for metric, (untrained, trained) in gains.items():
        assert trained >= untrained + spec.min_accuracy_gain, (
            f"{spec.eval_task} {metric}: {untrained:.3f} untrained, {trained:.3f} trained; "
            f"need +{spec.min_accuracy_gain}"
        )
