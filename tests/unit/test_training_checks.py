"""Convergence, alignment and throughput checks on synthetic curves with planted faults (seeded noise)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from harness.training import checks
from harness.training.curve import LossCurve, LossPoint, TrainedRun


def curve(losses: list[float], **fields: object) -> LossCurve:
    return LossCurve("synthetic", [LossPoint(step=i + 1, loss=v, **fields) for i, v in enumerate(losses)])  # type: ignore[arg-type]


def converging(n: int = 200, seed: int = 0, noise: float = 0.03) -> list[float]:
    rng = np.random.default_rng(seed)
    steps = np.arange(n)
    return list(2.0 + 6.0 * np.exp(-steps / 40.0) + rng.normal(0, noise, n))


def test_a_healthy_run_passes_every_check() -> None:
    run = curve(converging())
    for verdict in (checks.finite(run), checks.decreasing(run), checks.spikes(run), checks.plateau(run)):
        assert verdict.ok, verdict.message
    assert checks.final_below(run, 2.2).ok
    assert checks.skipped_and_nan(run).ok


def test_planted_nan_is_found_with_its_step() -> None:
    losses = converging()
    losses[120] = math.nan
    verdict = checks.finite(curve(losses))
    assert not verdict.ok
    assert verdict.steps == (121,)


def test_planted_spike_is_found_and_noise_is_not() -> None:
    losses = converging()
    losses[150] += 1.5
    verdict = checks.spikes(curve(losses))
    assert not verdict.ok
    assert verdict.steps == (151,)
    assert checks.decreasing(curve(losses)).ok, "one spike does not break the trend"


def test_divergence_and_flat_runs_fail_the_trend() -> None:
    rising = [2.0 + 0.01 * i for i in range(100)]
    verdict = checks.decreasing(curve(rising))
    assert not verdict.ok
    assert "rose" in verdict.message
    flat = list(5.0 + np.random.default_rng(1).normal(0, 0.02, 100))
    assert not checks.decreasing(curve(flat)).ok
    assert not checks.plateau(curve(flat)).ok
    assert not checks.final_below(curve(rising), 2.5).ok


def test_skipped_and_nan_counts() -> None:
    run = LossCurve("m", [LossPoint(1, 5.0, skipped=0, nan=0), LossPoint(2, 4.9, skipped=2, nan=1)])
    verdict = checks.skipped_and_nan(run)
    assert not verdict.ok
    assert verdict.steps == (2,)
    assert checks.skipped_and_nan(run, max_skipped=2, max_nan=1).ok


def test_alignment_passes_within_noise_and_fails_a_planted_shift() -> None:
    reference = curve([2.0 + 6.0 * math.exp(-i / 40.0) for i in range(200)])
    close = curve([v + 0.001 * math.sin(i) for i, v in enumerate(reference.losses())])
    ok = checks.align(close, reference)
    assert ok.ok, ok.message
    assert ok.numbers["matched_steps"] == 200
    shifted = reference.losses()
    shifted[100:] = [v * 1.05 for v in shifted[100:]]
    bad = checks.align(curve(shifted), reference)
    assert not bad.ok
    assert "mean relative error 2.5" in bad.message
    assert all(step > 100 for step in bad.steps), "the worst steps are where the shift was planted"


def test_alignment_needs_shared_steps() -> None:
    a = LossCurve("a", [LossPoint(1, 1.0)])
    b = LossCurve("b", [LossPoint(2, 1.0)])
    assert not checks.align(a, b).ok


def test_throughput_skips_warmup() -> None:
    points = [LossPoint(i, 5.0, elapsed_ms=9000.0 if i <= 5 else 2000.0, global_batch_size=64) for i in range(1, 16)]
    result = checks.throughput(points, seq_len=4096, cards=8)
    assert result.steps_used == 10
    assert result.tokens_per_s_per_card == pytest.approx(64 * 4096 / (8 * 2.0))
    assert result.samples_per_s == pytest.approx(32.0)
    assert checks.throughput(points[:5], 4096, 8).tokens_per_s_per_card is None, "warm-up only: missing"


def test_throughput_from_a_token_counter() -> None:
    """transformers / LLaMA-Factory logs: tokens per iteration from the counter's growth between logged steps."""
    points = [LossPoint(s, 2.0, elapsed_ms=500.0, tokens=300.0 * s) for s in range(0, 60, 10)]
    result = checks.throughput(points, seq_len=None, cards=2, global_batch_size=16, warmup=5)
    assert result.tokens_per_s_per_card == pytest.approx(300 / (2 * 0.5))
    assert result.samples_per_s == pytest.approx(32.0)
    assert result.steps_used == 5
    untimed = [LossPoint(s, 2.0, tokens=300.0 * s) for s in range(0, 60, 10)]
    assert checks.throughput(untimed, None, 1) == checks.Throughput(None, None, 0), "no timing: missing, not 0"


def test_accuracy_gain_passes_when_every_score_rose_enough_and_fails_on_a_planted_untrained_checkpoint() -> None:
    learnt = checks.accuracy_gain({"exact_match": (0.0, 0.8), "acc": (0.3, 0.5)}, min_gain=0.1)
    assert learnt.ok, learnt.message
    assert learnt.numbers["exact_match/gain"] == pytest.approx(0.8)
    unchanged = checks.accuracy_gain({"exact_match": (0.0, 0.0), "acc": (0.3, 0.5)}, min_gain=0.1)
    assert not unchanged.ok
    assert unchanged.message.startswith("exact_match rose by less than +0.1")
    assert not checks.accuracy_gain({}, min_gain=0.1).ok


def test_a_run_describes_itself_for_its_case() -> None:
    run = curve([3.0, 2.0, 1.5])
    assert run.series() == [[1, 3.0], [2, 2.0], [3, 1.5]]
    trained = TrainedRun("tiny", Path("/c"), run, Path("/log"), 1.0, Path("/f"), reused=True)
    config = trained.case_config({"max-steps": 3})
    assert config == {"launcher": "tiny", "log": "/log", "checkpoint": "/c", "reused_run": True, "max-steps": 3}


def test_a_run_that_stopped_before_its_configured_steps_fails() -> None:
    curve = LossCurve("hf", [LossPoint(step, 5.0 / step) for step in range(1, 41)])
    stopped = checks.completed(curve, 50)
    assert stopped.failed
    assert "stopped at step 40 of 50" in stopped.message
    assert checks.completed(curve, 40).ok
    assert checks.completed(LossCurve("hf", []), 10).failed, "no steps at all"
