"""Run baselines: reviewable YAML files of recent measurements per case and metric, and judging a case by them.

`fixtures/baselines/runs/<plan>.yaml`, schema `llmqual.baseline/1`:

    schema: llmqual.baseline/1
    plan: cpu-tiny
    platform: cpu
    device: Intel(R) Xeon(R) ...
    runs: [20261122-070000-1234, ...]          # the runs the samples came from, oldest first
    cases:
      serving.static/p1-in64-out32:
        output_throughput: [498.1, 502.3, ...] # the most recent `keep-samples` measurements (repeats included)

A baseline belongs to one (plan, platform, device): the plan names the model and the cases. `llmqual baseline
update RUN` appends a run's measurements; the file is meant to be reviewed in a pull request like code.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.errors import HarnessError
from harness.gates.drift import MIN_RUNS, Drift, plan_constant
from harness.gates.gate import GatePolicy, gate
from harness.gates.policy import GATED_METRICS
from harness.gates.verdict import Verdict
from harness.results.case import metric_samples

BASELINE_SCHEMA = "llmqual.baseline/1"


@dataclass
class RunBaseline:
    plan: str
    platform: str | None = None
    device: str | None = None
    runs: list[str] = field(default_factory=list)
    cases: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def samples(self, key: str, metric: str) -> list[float]:
        return self.cases.get(key, {}).get(metric, [])


def case_key(document: dict[str, Any]) -> str:
    return f"{document['suite']}/{document['case_id']}"


def load_baseline(path: Path) -> RunBaseline | None:
    """The baseline at `path`; None when there is none yet. A malformed file is an error naming it."""
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("schema") != BASELINE_SCHEMA:
            raise ValueError(f"schema must be {BASELINE_SCHEMA}")
        cases = {
            str(key): {str(m): [float(v) for v in values] for m, values in metrics.items()}
            for key, metrics in (data.get("cases") or {}).items()
        }
        return RunBaseline(
            str(data["plan"]), data.get("platform"), data.get("device"), list(data.get("runs") or []), cases
        )
    except (yaml.YAMLError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise HarnessError(
            f"{path}: not a valid run baseline ({exc}); regenerate it with `llmqual baseline update RUN`"
        ) from exc


def save_baseline(path: Path, baseline: RunBaseline) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (
        "# llmqual run baseline: recent measurements per case and metric; written by `llmqual baseline update RUN`.\n"
        "# Review changes like code: a baseline that moves is a claim about the product's speed.\n"
    )
    data = {
        "schema": BASELINE_SCHEMA,
        "plan": baseline.plan,
        "platform": baseline.platform,
        "device": baseline.device,
        "runs": baseline.runs,
        "cases": {
            k: {m: [round(v, 6) for v in vs] for m, vs in ms.items()} for k, ms in sorted(baseline.cases.items())
        },
    }
    path.write_text(header + yaml.safe_dump(data, sort_keys=False, width=120, allow_unicode=True), encoding="utf-8")
    return path


def gated_values(document: dict[str, Any]) -> dict[str, list[float]]:
    """The measured values of the metrics the document's suite gates (every repeat), for a baseline."""
    values: dict[str, list[float]] = {}
    for metric in GATED_METRICS.get(document["suite"], ()):
        found = [float(v) for v in metric_samples(document, metric) if isinstance(v, int | float)]
        if found:
            values[metric] = found
    return values


def update(baseline: RunBaseline, run_id: str, documents: Iterable[dict[str, Any]], keep: int) -> RunBaseline:
    """`baseline` with the valid cases of a run appended, keeping the newest `keep` samples per metric."""
    cases = {k: dict(v) for k, v in baseline.cases.items()}
    for document in documents:
        if not document.get("valid", True) or document.get("config", {}).get("reused_run") or document.get("partial"):
            continue  # an invalid measurement (client fell behind), a cached run or a case cut short is no reference
        entry = cases.setdefault(case_key(document), {})
        for metric, values in gated_values(document).items():
            entry[metric] = (entry.get(metric, []) + values)[-keep:]
    runs = [r for r in baseline.runs if r != run_id] + [run_id]
    return RunBaseline(baseline.plan, baseline.platform, baseline.device, runs, cases)


def incomparable(baseline: RunBaseline, platform: str | None, device: str | None) -> str | None:
    """Why a run on (`platform`, `device`) cannot be judged by `baseline`, or None when it can.

    A number measured on one device says nothing about another: a baseline gives verdicts only on the platform
    and device it was recorded on (for CPUs the model, family/model/stepping and vector instruction set).
    """
    if baseline.platform and platform and baseline.platform != platform:
        where = f"platform {baseline.platform}, this run {platform}"
    elif baseline.device != device:
        where = f"device {baseline.device or 'unknown'}, this run {device or 'unknown'}"
    else:
        return None
    return (
        f"the baseline was recorded on another {where}: no verdict across devices; record a baseline on this "
        "machine with `llmqual baseline update RUN --out FILE` and point gates.baseline at it"
    )


def foreign_baseline(path: Path, platform: str, device: str | None) -> str | None:
    """A message when the baseline at `path` was recorded on another platform or device (None when it matches or
    there is none): said before anything runs, since none of its verdicts will count."""
    baseline = load_baseline(path)
    reason = None if baseline is None else incomparable(baseline, platform, device)
    return None if reason is None else f"gates.baseline {path}: {reason}"


def judge(
    document: dict[str, Any],
    baseline: RunBaseline | None,
    policy: GatePolicy,
    platform: str | None = None,
    device: str | None = None,
) -> list[Verdict]:
    """The gate of every gated metric of a case against the baseline (none without a baseline entry); a baseline
    from another device gives every metric an inconclusive verdict that says so."""
    if baseline is None:
        return []
    key = case_key(document)
    reason = incomparable(baseline, platform, device)
    if reason is not None:
        metrics = [m for m in GATED_METRICS.get(document["suite"], ()) if baseline.samples(key, m)]
        return [Verdict(m, "inconclusive", f"{m}: {reason}") for m in metrics]
    return [
        gate(metric, baseline.samples(key, metric), metric_samples(document, metric), policy)
        for metric in GATED_METRICS.get(document["suite"], ())
        if baseline.samples(key, metric)
    ]


def compare_samples(
    a: dict[str, dict[str, Sequence[float | None]]],
    b: dict[str, dict[str, Sequence[float | None]]],
    policy: GatePolicy,
    drifts: Mapping[str, Drift] | None = None,
) -> list[tuple[str, Verdict]]:
    """Gate every (case, metric) present in both: `a` is the reference, `b` the candidate. A metric with a
    measured drift (harness.gates.drift) is judged with it instead of the policy's between_runs; each verdict
    says which it used."""
    drifts = drifts or {}
    rows = []
    for key in sorted(set(a) & set(b)):
        for metric in (m for m in a[key] if m in b[key]):
            drift = drifts.get(metric)
            used = dataclasses.replace(policy, between_runs=drift.bound) if drift else policy
            verdict = gate(metric, a[key][metric], b[key][metric], used)
            source = drift.describe() if drift else plan_constant(policy.between_runs, f"fewer than {MIN_RUNS} runs")
            rows.append(
                (
                    key,
                    dataclasses.replace(
                        verdict,
                        message=f"{verdict.message}; {source}",
                        numbers={**verdict.numbers, "between_runs": used.between_runs},
                    ),
                )
            )
    return rows
