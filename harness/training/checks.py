"""Convergence checks and run-to-run alignment of loss curves, and training throughput. Pure functions.

Each check returns a Verdict (harness.gates.verdict; `metric` is the check's name, the outcome pass or fail) so a
suite can assert it and a report can show it. Defaults follow what
Ascend engineers use: alignment within a mean relative error of 2% and a mean absolute error of 0.005 over the
matched steps (docs/training.md); throughput after 5 warm-up steps.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from harness.gates.verdict import Verdict
from harness.metric_names import FINAL_LOSS
from harness.training.curve import LossCurve, LossPoint


def _judged(
    check: str, ok: bool, message: str, steps: tuple[int, ...] = (), numbers: dict[str, float | None] | None = None
) -> Verdict:
    """A check's Verdict: pass or fail (a training check is never inconclusive); `steps` are the steps the message
    is about (NaNs, spikes, worst misalignments)."""
    return Verdict(check, "pass" if ok else "fail", message, steps=steps, numbers=numbers or {})


def _steps_losses(curve: LossCurve) -> list[tuple[int, float]]:
    return [(p.step, p.loss) for p in curve.points if p.loss is not None]


def finite(curve: LossCurve) -> Verdict:
    bad = tuple(step for step, loss in _steps_losses(curve) if not math.isfinite(loss))
    if not curve.points:
        return _judged("finite", False, "the log has no training loss")
    if bad:
        return _judged(
            "finite", False, f"non-finite loss at steps {list(bad[:10])}{' ...' if len(bad) > 10 else ''}", bad
        )
    return _judged("finite", True, f"all {len(curve.points)} losses are finite")


def completed(curve: LossCurve, expected_steps: int) -> Verdict:
    """The run logged its configured last step: a run that stopped early (a crash its launcher did not report, a
    kill) is no converged run, whatever its loss did until then."""
    last = max((p.step for p in curve.points), default=0)
    numbers: dict[str, float | None] = {"last_step": float(last), "expected_steps": float(expected_steps)}
    if last < expected_steps:
        return _judged(
            "completed",
            False,
            f"the run stopped at step {last} of {expected_steps}: it ended early (see its console log)",
            numbers=numbers,
        )
    return _judged("completed", True, f"the run reached step {last} of {expected_steps}", numbers=numbers)


def decreasing(curve: LossCurve, window_fraction: float = 0.2, min_relative_drop: float = 0.05) -> Verdict:
    """The median loss of the last part of the run is below that of the first part by `min_relative_drop`.

    Medians over windows make it robust to noise and to single spikes.
    """
    losses = [loss for _, loss in _steps_losses(curve) if math.isfinite(loss)]
    if len(losses) < 4:
        return _judged("decreasing", False, f"too few finite losses ({len(losses)}) to judge a trend")
    width = max(2, int(len(losses) * window_fraction))
    first, last = statistics.median(losses[:width]), statistics.median(losses[-width:])
    drop = (first - last) / abs(first) if first else 0.0
    numbers: dict[str, float | None] = {"first_median": first, "last_median": last, "relative_drop": drop}
    if drop >= min_relative_drop:
        return _judged(
            "decreasing", True, f"loss fell from a median of {first:.4f} to {last:.4f} ({drop:.1%})", numbers=numbers
        )
    word = "rose" if drop < 0 else "fell only"
    return _judged(
        "decreasing",
        False,
        f"loss {word} from a median of {first:.4f} to {last:.4f} ({drop:+.1%}; need {min_relative_drop:.0%})",
        numbers=numbers,
    )


def spikes(curve: LossCurve, window: int = 10, factor: float = 6.0) -> Verdict:
    """Steps whose loss jumps above the median of the previous `window` by more than `factor` robust deviations."""
    found = []
    pairs = [(s, v) for s, v in _steps_losses(curve) if math.isfinite(v)]
    for i in range(window, len(pairs)):
        previous = [v for _, v in pairs[i - window : i]]
        centre = statistics.median(previous)
        spread = 1.4826 * statistics.median(abs(v - centre) for v in previous)
        spread = max(spread, 0.05 * abs(centre), 1e-6)  # a floor: a near-constant window is not infinitely strict
        if pairs[i][1] > centre + factor * spread:
            found.append(pairs[i][0])
    if found:
        return _judged("spikes", False, f"loss spikes at steps {found[:10]}", tuple(found))
    return _judged("spikes", True, "no loss spike")


def plateau(curve: LossCurve, window: int = 20, min_relative_change: float = 0.002) -> Verdict:
    """Fails when the loss stopped moving well before the end: the first of the last two windows' medians
    differs from the second by less than `min_relative_change` while the run's first half was still falling."""
    losses = [v for _, v in _steps_losses(curve) if math.isfinite(v)]
    if len(losses) < 3 * window:
        return _judged("plateau", True, f"too short to judge a plateau ({len(losses)} points < {3 * window})")
    a, b = statistics.median(losses[-2 * window : -window]), statistics.median(losses[-window:])
    change = (a - b) / abs(a) if a else 0.0
    start = statistics.median(losses[:window])
    if abs(change) < min_relative_change and (start - b) / abs(start) < 0.01:
        return _judged("plateau", False, f"the loss has not moved from {start:.4f} (plateau at {b:.4f})")
    return _judged("plateau", True, f"last windows changed by {change:.2%}", numbers={"relative_change": change})


def skipped_and_nan(curve: LossCurve, max_skipped: int = 0, max_nan: int = 0) -> Verdict:
    skipped = sum(p.skipped or 0 for p in curve.points)
    nans = sum(p.nan or 0 for p in curve.points)
    numbers: dict[str, float | None] = {"skipped": skipped, "nan": nans}
    if skipped > max_skipped or nans > max_nan:
        steps = tuple(p.step for p in curve.points if (p.skipped or 0) or (p.nan or 0))
        return _judged(
            "skipped_nan",
            False,
            f"{skipped} skipped and {nans} NaN iterations (allowed {max_skipped}, {max_nan})",
            steps,
            numbers,
        )
    return _judged("skipped_nan", True, f"{skipped} skipped, {nans} NaN iterations", numbers=numbers)


def final_below(curve: LossCurve, threshold: float, tail: int = 5) -> Verdict:
    losses = [v for _, v in _steps_losses(curve) if math.isfinite(v)][-tail:]
    if not losses:
        return _judged(FINAL_LOSS, False, "no finite loss at the end of the run")
    final = statistics.median(losses)
    return _judged(
        FINAL_LOSS,
        final < threshold,
        f"final loss (median of last {len(losses)}) {final:.4f}, threshold {threshold}",
        numbers={"final": final},
    )


def align(
    run: LossCurve, reference: LossCurve, max_mre: float = 0.02, max_mae: float = 0.005, worst: int = 5
) -> Verdict:
    """Compare a run with a reference over the steps both logged: mean relative and mean absolute error."""
    ours = dict(_steps_losses(run))
    theirs = dict(_steps_losses(reference))
    steps = sorted(set(ours) & set(theirs))
    if not steps:
        return _judged("alignment", False, "the run and the reference share no logged step")
    errors = [(abs(ours[s] - theirs[s]), s) for s in steps]
    relative = [abs(ours[s] - theirs[s]) / abs(theirs[s]) if theirs[s] else math.inf for s in steps]
    mre, mae = sum(relative) / len(relative), sum(e for e, _ in errors) / len(errors)
    top = sorted(errors, reverse=True)[:worst]
    listing = ", ".join(f"step {s}: {ours[s]:.4f} vs {theirs[s]:.4f}" for _, s in top)
    ok = mre <= max_mre and mae <= max_mae
    message = (
        f"{len(steps)} matched steps: mean relative error {mre:.3%} (max {max_mre:.1%}), mean absolute error "
        f"{mae:.4f} (max {max_mae}); worst: {listing}"
    )
    return _judged(
        "alignment", ok, message, tuple(s for _, s in top), {"mre": mre, "mae": mae, "matched_steps": len(steps)}
    )


@dataclass(frozen=True)
class Throughput:
    tokens_per_s_per_card: float | None
    samples_per_s: float | None
    steps_used: int


def throughput(
    points: Sequence[LossPoint],
    seq_len: int | None,
    cards: int,
    global_batch_size: int | None = None,
    warmup: int = 5,
) -> Throughput:
    """Training throughput over the iterations after step `warmup`, from their logged time per iteration.

    Tokens per iteration are global batch size x sequence length when both are known (Megatron's tokens/s/p);
    otherwise the growth of the log's token counter between logged steps (transformers, LLaMA-Factory).
    tokens/s/p = tokens per iteration / (cards x seconds per iteration), averaged over iterations; samples/s =
    global batch size / seconds per iteration. Missing inputs give None, never 0.
    """
    tokens_rates, sample_rates = [], []
    previous: LossPoint | None = None
    for point in points:
        before, previous = previous, point
        if point.step <= warmup or not point.elapsed_ms:
            continue
        seconds = point.elapsed_ms / 1000.0
        batch = global_batch_size or point.global_batch_size
        if batch:
            sample_rates.append(batch / seconds)
        if batch and seq_len:
            tokens_rates.append(batch * seq_len / (cards * seconds))
        elif point.tokens is not None and before is not None and before.tokens is not None:
            per_step = (point.tokens - before.tokens) / (point.step - before.step)
            tokens_rates.append(per_step / (cards * seconds))
    return Throughput(
        sum(tokens_rates) / len(tokens_rates) if tokens_rates else None,
        sum(sample_rates) / len(sample_rates) if sample_rates else None,
        max(len(tokens_rates), len(sample_rates)),
    )


def accuracy_gain(gains: dict[str, tuple[float, float]], min_gain: float) -> Verdict:
    """Each metric's score after training (second) must exceed its score before (first) by `min_gain`."""
    short = {m: (b, a) for m, (b, a) in gains.items() if a < b + min_gain}
    if not gains:
        return _judged("accuracy_gain", False, "no score to compare: the evaluation returned no metric")
    numbers: dict[str, float | None] = {f"{m}/gain": a - b for m, (b, a) in gains.items()}
    text = "; ".join(f"{m}: {b:.3f} before, {a:.3f} after" for m, (b, a) in gains.items())
    if short:
        return _judged(
            "accuracy_gain", False, f"{', '.join(short)} rose by less than +{min_gain}: {text}", numbers=numbers
        )
    return _judged("accuracy_gain", True, f"every score rose by at least +{min_gain}: {text}", numbers=numbers)
