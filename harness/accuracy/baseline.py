"""Accuracy baselines per (model, task, metric), and the stderr-aware regression check.

A baseline file (`fixtures/baselines/accuracy/<model>.yaml`):

    model: tiny-llama
    source: how and when the numbers were recorded
    tasks:
      llmqual_arith_mc:
        acc,none: {value: 0.27, stderr: 0.0446}

A result regresses only when it is worse than the baseline by more than k x stderr (lm-eval's stderr of this
result) AND by more than an absolute floor: noise within the standard error does not fail a run, and a tiny
stderr on a large sample does not make a 0.1-point wobble a failure.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import yaml

from harness.accuracy.scores import Score
from harness.errors import PlanError
from harness.gates.verdict import Verdict


@dataclass(frozen=True)
class Reference:
    value: float
    stderr: float | None = None


def check(score: Score, baseline: Reference, k: float, floor: float) -> Verdict:
    """Compare one score with its baseline: a Verdict on `task/metric` whose change is the absolute difference
    (negative is worse), failed when worse by more than k x the score's stderr and more than `floor`. Pure."""
    worse_by = (baseline.value - score.value) if score.higher_is_better else (score.value - baseline.value)
    noise = k * score.stderr if score.stderr is not None else 0.0
    margin = max(noise, floor)
    regressed = worse_by > noise and worse_by > floor
    stderr_text = f"{score.stderr:.4f}" if score.stderr is not None else "N/A"
    message = (
        f"{score.task} {score.metric}: {score.value:.4f} (stderr {stderr_text}) vs baseline {baseline.value:.4f}; "
        f"worse by {worse_by:+.4f}, allowed {margin:.4f} (max of {k} x stderr and floor {floor})"
    )
    return Verdict(
        f"{score.task}/{score.metric}",
        "fail" if regressed else "pass",
        message,
        change=-worse_by,
        absolute=True,
        allowed=margin,
        baseline_mean=baseline.value,
        candidate_mean=score.value,
        numbers={"baseline_stderr": baseline.stderr, "stderr": score.stderr},
    )


def against_baselines(
    found: list[Score],
    baselines: dict[str, dict[str, Reference]],
    k: float,
    floor: float,
    recorded_for: str | None = None,
    model: str | None = None,
) -> list[Verdict]:
    """A Verdict for each score that has a baseline; scores without one are not judged. A baseline recorded for
    another model (`recorded_for` against the evaluated `model`) judges nothing: each verdict is inconclusive and
    says so, as a throughput baseline from another device does."""
    paired = [(s, r) for s in found if (r := baselines.get(s.task, {}).get(s.metric)) is not None]
    if recorded_for and model and recorded_for != model:
        return [
            Verdict(
                f"{score.task}/{score.metric}",
                "inconclusive",
                f"{score.task} {score.metric}: the baseline was recorded for model {recorded_for!r}, this run "
                f"evaluated {model!r}: no verdict across models; record a baseline for {model!r} and point "
                "suites.accuracy.baselines at it",
                absolute=True,
                baseline_mean=reference.value,
                candidate_mean=score.value,
            )
            for score, reference in paired
        ]
    return [check(score, reference, k, floor) for score, reference in paired]


def baseline_model(path: Path) -> str | None:
    """The model a baseline file was recorded for (its `model:`), None when it names none or does not exist."""
    if not path.exists():
        return None
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    model = data.get("model") if isinstance(data, dict) else None
    return str(model) if model else None


def against_reference(reference: Score, candidate: Score, k: float, floor: float) -> Verdict:
    """A candidate configuration's score against the same task's score under the reference configuration, both
    measured in this run: the allowed noise is k x the stderr of their difference, sqrt(se_ref^2 + se_cand^2)
    (independent samples), or the floor alone when neither has a stderr."""
    spread = [e for e in (reference.stderr, candidate.stderr) if e is not None]
    combined = math.sqrt(sum(e * e for e in spread)) if spread else None
    judged = dataclasses.replace(candidate, stderr=combined)
    return check(judged, Reference(reference.value, reference.stderr), k, floor)


def load_baselines(path: Path) -> dict[str, dict[str, Reference]]:
    """task -> metric -> Reference; a missing file is an empty set of baselines (nothing to compare yet)."""
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return {
            task: {metric: Reference(float(v["value"]), v.get("stderr")) for metric, v in metrics.items()}
            for task, metrics in (data.get("tasks") or {}).items()
        }
    except (yaml.YAMLError, AttributeError, KeyError, TypeError, ValueError) as exc:
        raise PlanError(
            str(path), "tasks", f"not a valid accuracy baseline file: {exc}", "see harness/accuracy/baseline.py"
        ) from exc
