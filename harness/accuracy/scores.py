"""Scores out of an lm-eval results document: `results[task]["<metric>,<filter>"]` with `..._stderr,<filter>`.

A stderr lm-eval could not compute is the string "N/A": it becomes None (missing), never 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Score:
    task: str
    metric: str  # "acc,none", "exact_match,strict-match"
    value: float
    stderr: float | None
    higher_is_better: bool = True


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def scores(results: dict[str, Any]) -> list[Score]:
    """Every metric of every task in an lm-eval results document."""
    found = []
    for task, metrics in sorted((results.get("results") or {}).items()):
        better = (results.get("higher_is_better") or {}).get(task, {})
        for key, value in sorted(metrics.items()):
            name, _, filter_name = key.partition(",")
            if not filter_name or "_stderr" in name or _number(value) is None:
                continue
            stderr = _number(metrics.get(f"{name}_stderr,{filter_name}"))
            found.append(Score(task, key, float(value), stderr, bool(better.get(name, True))))
    return found


def score_metrics(found: list[Score]) -> dict[str, float | None]:
    """A case's metrics from lm-eval's scores: `task/metric` and `task/metric/stderr`."""
    metrics: dict[str, float | None] = {}
    for score in found:
        metrics[f"{score.task}/{score.metric}"] = score.value
        metrics[f"{score.task}/{score.metric}/stderr"] = score.stderr
    return metrics
