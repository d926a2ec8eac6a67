"""A/B measurement: a reference and a candidate server measured in turn in one run, and the paired verdict.

Both sides are warmed up, then measured `pairs` times each with the same static case and the protocol's window,
alternating which side goes first (AB, BA, AB, ...) so that neither always profits from going first or suffers a
drift; every measurement gets prompts of its own. The pairs go to the paired gate (harness.gates.gate.paired_gate).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from harness.bench.cases import LoadSettings, StaticCase
from harness.bench.execute import run_static
from harness.bench.protocol import size_window, static_case_with, stream, wall_clock
from harness.gates.gate import GatePolicy, paired_gate
from harness.gates.verdict import Outcome, Verdict, overall
from harness.load.synthetic import random_samples
from harness.load.tokens import Tokens
from harness.results.case import CaseResult
from harness.server.endpoint import Endpoint

SIDES = ("reference", "candidate")


@dataclass
class ABMeasurement:
    """Every measurement of both sides, in pair order."""

    reference: list[CaseResult]
    candidate: list[CaseResult]
    requests_per_repeat: int

    def values(self, side: str, metric: str) -> list[float | None]:
        return [r.metrics.get(metric) for r in getattr(self, side)]


def measure_ab(
    reference: Endpoint,
    candidate: Endpoint,
    tokens: Tokens,
    case: StaticCase,
    settings: LoadSettings,
    pairs: int,
    name: str,
) -> ABMeasurement:
    endpoints = {"reference": reference, "candidate": candidate}

    def run(side: str, repeat: int, count: int) -> CaseResult:
        rng = stream(settings.seed, f"ab/{name}/{side}", case.id, repeat)
        samples = random_samples(tokens, count, case.prompt_tokens, case.output_tokens, rng)
        sized = static_case_with(case, len(samples))
        return run_static(endpoints[side], tokens, sized, settings, samples, suite="serving.ab")

    def unmeasured(stage: int, count: int) -> float:
        took = 0.0
        for side in SIDES:  # both warmed up and calibrated; the slower side's pace sizes the window of both
            started = wall_clock()
            run(side, stage, count)
            took = max(took, wall_clock() - started)
        return took

    per_repeat, _ = size_window(unmeasured, case.num_requests, case.parallel, settings)
    measured: dict[str, list[CaseResult]] = {side: [] for side in SIDES}
    for pair in range(pairs):
        for side in SIDES if pair % 2 == 0 else SIDES[::-1]:
            measured[side].append(run(side, pair, per_repeat))
    return ABMeasurement(measured["reference"], measured["candidate"], per_repeat)


def ab_verdicts(measured: ABMeasurement, metrics: Sequence[str], policy: GatePolicy) -> list[Verdict]:
    return [paired_gate(m, measured.values("reference", m), measured.values("candidate", m), policy) for m in metrics]


def ab_summary(measured: ABMeasurement, metric: str) -> dict[str, float | None]:
    """Mean of each side and the mean paired change, for the case document."""
    out: dict[str, float | None] = {}
    for side in SIDES:
        values = [float(v) for v in measured.values(side, metric) if v is not None]
        out[f"{side}/{metric}"] = statistics.fmean(values) if values else None
    return out


def meets_expectation(verdicts: Sequence[Verdict], expect: Outcome | None) -> tuple[bool, str]:
    """Whether the comparison's verdict is what the plan expects (None: anything but a fail)."""
    verdict = overall(verdicts)
    text = "; ".join(v.message for v in verdicts)
    if expect is None:
        return verdict != "fail", f"verdict {verdict}: {text}"
    return verdict == expect, f"verdict {verdict}, expected {expect}: {text}"
