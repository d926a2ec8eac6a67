"""Training suite: a run converges, follows its reference curve, reports its throughput, resumes where it stopped,
and (on CPU) raises accuracy on the task it was taught.

The run is the `trained_run` fixture: the plan's launcher (the embedded tiny SFT run on CPU, LLaMA-Factory or
MindSpeed-LLM on hardware), or a log given with `--training-log`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.accuracy.evaluate import EvalSettings, evaluate_checkpoint
from harness.accuracy.scores import scores
from harness.config.plan import Plan
from harness.config.training import TrainingSpec
from harness.metric_names import FINAL_LOSS, FIRST_LOSS, SAMPLES_PER_S, TOKENS_PER_S_PER_CARD
from harness.model.resolve import base_model
from harness.plugins.markers import not_shown
from harness.plugins.recording import RecordCase
from harness.results.case import CaseResult
from harness.run import Run
from harness.training import checks
from harness.training.curve import LossCurve, TrainedRun
from harness.training.parsers import parse_log
from harness.training.tiny_trainer import tiny_config, train_process

pytestmark = pytest.mark.training


def test_loss_converges(trained_run: TrainedRun, training_spec: TrainingSpec, record_case: RecordCase) -> None:
    curve, spec = trained_run.curve, training_spec
    verdicts = {
        "finite": checks.finite(curve),
        "decreasing": checks.decreasing(curve, min_relative_drop=spec.min_relative_drop),
        "spikes": checks.spikes(curve, factor=spec.spike_factor),
        "plateau": checks.plateau(curve),
        "skipped_nan": checks.skipped_and_nan(curve),
    }
    if spec.final_loss_below is not None:
        verdicts["final_loss"] = checks.final_below(curve, spec.final_loss_below)
    if trained_run.expected_steps is not None:
        verdicts["completed"] = checks.completed(curve, trained_run.expected_steps)
    losses = curve.losses()
    record_case(
        CaseResult(
            suite="training.convergence",
            case_id=trained_run.launcher,
            config=trained_run.case_config(spec.model_dump(by_alias=True)),
            metrics={
                FIRST_LOSS: losses[0] if losses else None,
                FINAL_LOSS: losses[-1] if losses else None,
                "points": len(losses),
                "wall_s": trained_run.wall_s,
            },
            checks={name: v.as_json() for name, v in verdicts.items()},
            series={"loss": curve.series()},
        )
    )
    failed = [f"{name}: {v.message}" for name, v in verdicts.items() if not v.ok]
    assert not failed, "\n".join(failed)


def test_loss_follows_the_reference(
    plan: Plan, trained_run: TrainedRun, training_spec: TrainingSpec, record_case: RecordCase
) -> None:
    if training_spec.reference is None:
        pytest.skip("the plan sets no suites.training.reference curve")
    path = plan.relative(training_spec.reference)
    reference = parse_log(path.read_text(encoding="utf-8"))
    verdict = checks.align(
        trained_run.curve, reference, max_mre=training_spec.align_max_mre, max_mae=training_spec.align_max_mae
    )
    record_case(
        CaseResult(
            suite="training.alignment",
            case_id=trained_run.launcher,
            config={
                "reference": str(path),
                "max_mre": training_spec.align_max_mre,
                "max_mae": training_spec.align_max_mae,
            },
            metrics={
                "mre": verdict.numbers.get("mre"),
                "mae": verdict.numbers.get("mae"),
                "matched_steps": verdict.numbers.get("matched_steps"),
            },
            checks={"alignment": verdict.as_json()},
            series={"loss": trained_run.curve.series(), "reference": reference.series()},
        )
    )
    assert verdict.ok, f"the loss curve departs from {path}: {verdict.message}"


def test_throughput_is_measured(trained_run: TrainedRun, training_spec: TrainingSpec, record_case: RecordCase) -> None:
    """Reported, not gated here: tokens/s/card and samples/s after the warm-up steps, from the log's timing."""
    settings = training_spec.throughput
    batch = settings.global_batch_size or (training_spec.batch_size if trained_run.launcher == "tiny" else None)
    result = checks.throughput(trained_run.curve.points, settings.seq_len, settings.cards, batch, settings.warmup_steps)
    record_case(
        CaseResult(
            suite="training.throughput",
            case_id=trained_run.launcher,
            config={
                "reused_run": trained_run.reused,
                "cards": settings.cards,
                "seq_len": settings.seq_len,
                "global_batch_size": batch,
                "warmup_steps": settings.warmup_steps,
            },
            metrics={
                TOKENS_PER_S_PER_CARD: result.tokens_per_s_per_card,
                SAMPLES_PER_S: result.samples_per_s,
                "iterations_used": result.steps_used,
            },
        )
    )
    assert result.tokens_per_s_per_card is not None, (
        f"{trained_run.log_path} gives no time per iteration and token count after step {settings.warmup_steps}; "
        "set suites.training.throughput (seq-len, global-batch-size) for a log without them"
    )
    assert result.tokens_per_s_per_card > 0


def test_resume_continues_the_curve(
    plan: Plan,
    training_spec: TrainingSpec,
    trained_run: TrainedRun,
    model_cache: Path,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    spec = training_spec
    if spec.resume_at is None:
        pytest.skip("the plan sets no suites.training.resume-at")
    if trained_run.launcher != "tiny":
        not_shown(request, f"the resume check runs the embedded launcher; this run is {trained_run.launcher}")
    base = base_model(plan, model_cache)
    config = tiny_config(spec)
    # The uninterrupted run saved its checkpoints: resume from the one at resume-at (else make it first).
    checkpoint = trained_run.folder / f"checkpoint-{spec.resume_at}"
    if not checkpoint.is_dir():
        train_process(base, tmp_path / "first", config, stop_after=spec.resume_at)
        checkpoint = tmp_path / "first" / f"checkpoint-{spec.resume_at}"
    resumed = train_process(base, tmp_path / "resumed", config, resume_from=checkpoint)
    after = [p for p in resumed.points if p.step > spec.resume_at]
    assert after, "the resumed run logged nothing after the checkpoint"
    verdict = checks.align(
        LossCurve(resumed.format, after), trained_run.curve, max_mre=spec.resume_max_mre, max_mae=1.0
    )
    assert verdict.ok, "the resumed run does not continue the uninterrupted one: " + verdict.message


def test_training_raised_accuracy(
    plan: Plan,
    training_spec: TrainingSpec,
    trained_run: TrainedRun,
    lm_eval_include: Path | None,
    model_cache: Path,
    record_case: RecordCase,
    llmqual_run: Run,
    request: pytest.FixtureRequest,
) -> None:
    """The checkpoint answers the task it was taught better than the model it started from.

    Both are scored in this process with transformers (lm-eval's `hf` model): the training suite judges what it
    trained without a serving stack (the accuracy suite scores the served checkpoint through vLLM; on the CPU plan
    the two agree, 0.80 exact match on llmqual_arith_gen)."""
    task = training_spec.eval_task
    if task is None:
        pytest.skip("the plan sets no suites.training.eval-task")
    if trained_run.checkpoint is None:
        not_shown(request, "the run left no checkpoint to score")
    settings = EvalSettings(batch_size=16, log_samples=True)
    out = llmqual_run.directory / "training" / "accuracy"
    base = base_model(plan, model_cache)
    before = scores(evaluate_checkpoint(base, task, lm_eval_include, settings, out / "untrained"))
    after = scores(evaluate_checkpoint(trained_run.checkpoint, task, lm_eval_include, settings, out / "trained"))
    gains = {b.metric: (b.value, a.value) for b, a in zip(before, after, strict=True)}
    record_case(
        CaseResult(
            suite="training.accuracy",
            case_id=task,
            config={"task": task, "checkpoint": str(trained_run.checkpoint), "engine": "transformers (lm-eval hf)"},
            metrics={f"{m}/untrained": b for m, (b, _) in gains.items()}
            | {f"{m}/trained": a for m, (_, a) in gains.items()},
        )
    )
    verdict = checks.accuracy_gain(gains, training_spec.min_accuracy_gain)
    assert verdict.ok, f"{task}: {verdict.message}"
