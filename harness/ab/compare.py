"""One A/B comparison, measured and judged, as the case document both `pytest` (suites/serving/test_ab.py) and
`llmqual ab` write: the builds, every window in order (side, pair, the metrics, the outside CPU), the pairs set
aside, the verdict per metric, and whether the plan's expectation was met."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Literal

from harness.ab.measure import ABMeasurement, ab_summary, ab_verdicts, measure_ab, meets_expectation
from harness.ab.sides import Build
from harness.bench.cases import LoadSettings, StaticCase
from harness.bench.from_plan import plan_static_cases
from harness.config.ab import ABComparison, ABSpec
from harness.config.plan import Plan
from harness.gates.gate import GatePolicy
from harness.gates.verdict import Outcome, Verdict, overall
from harness.load.tokens import Tokens
from harness.results.case import CaseResult
from harness.server.pause import held
from harness.server.vllm import VLLMServer

SUITE = "serving.ab"


@dataclass(frozen=True)
class Compared:
    """A comparison's outcome: its case document, its measurements (by case id), its verdicts (one per case and
    metric, the case in `cases`), and whether the plan's expectation was met."""

    result: CaseResult
    measurements: dict[str, ABMeasurement]
    verdicts: list[Verdict]
    ok: bool
    message: str
    cases: tuple[str, ...] = ()  # the case of each verdict

    @property
    def outcome(self) -> Outcome | None:
        return overall(self.verdicts)

    @property
    def ok_outcome(self) -> Literal["pass", "fail", "inconclusive"]:
        """What the comparison says to CI: pass (the verdict expected, or no regression shown), fail (a regression,
        or not the verdict expected), inconclusive (the gate could not decide)."""
        if self.ok and self.outcome in ("pass", "fail"):
            return "pass"
        if self.outcome in ("inconclusive", "not_shown", None):
            return "inconclusive"
        return "fail"


def ab_cases(spec: ABSpec, plan: Plan) -> list[StaticCase]:
    """The cases each pair measures: the section's workload, or every static case of the plan."""
    if spec.cases == "plan-static":
        return plan_static_cases(plan)
    w = spec.workload
    return [StaticCase(w.parallel_num, w.prompt_tokens, w.output_tokens, 1)]


def compare(
    spec: ABSpec,
    comparison: ABComparison,
    servers: dict[str, VLLMServer],
    builds: dict[str, Build],
    tokens: Tokens,
    settings: LoadSettings,
    policy: GatePolicy,
    cases: Sequence[StaticCase],
) -> Compared:
    """Measure `comparison` on the running `servers` ("reference", "candidate"), each of `cases` in pairs of its
    own, and judge every case and metric."""
    pairs = comparison.pairs or spec.pairs
    if spec.min_seconds is not None:
        settings = dataclasses.replace(settings, min_seconds=spec.min_seconds)
    endpoints = {side: server.endpoint for side, server in servers.items()}

    def hold(side: str) -> AbstractContextManager[None]:
        return held(servers[side]) if spec.idle == "pause" else contextlib.nullcontext()

    measurements: dict[str, ABMeasurement] = {}
    verdicts: list[Verdict] = []
    of_case: list[str] = []
    for case in cases:
        name = comparison.name if len(cases) == 1 else f"{comparison.name}/{case.id}"
        measured = measure_ab(endpoints, tokens, case, settings, pairs, name, hold, spec.max_outside_cpu)
        measurements[case.id] = measured
        judged = ab_verdicts(measured, spec.metrics, policy)
        verdicts += judged
        of_case += [case.id] * len(judged)
    ok, message = meets_expectation(verdicts, comparison.expect)
    windows = [(case_id, w) for case_id, m in measurements.items() for w in m.windows]
    result = CaseResult(
        suite=SUITE,
        case_id=comparison.name,
        config={
            "reference": builds["reference"].as_json(),
            "candidate": builds["candidate"].as_json(),
            "expect": comparison.expect,
            "pairs": pairs,
            "cases": [dataclasses.asdict(c) | {"id": c.id} for c in cases],
            "pairs_measured": sum(len({w.pair for w in m.windows}) for m in measurements.values()),
            "pairs_set_aside": sum(len(m.set_aside) for m in measurements.values()),
            "idle": spec.idle,
            "max_outside_cpu": spec.max_outside_cpu,
            "outside_cores_max": round(max(m.outside_cores_max for m in measurements.values()), 3),
            "requests_per_window": {case_id: m.requests_per_window for case_id, m in measurements.items()},
            "min_seconds": settings.min_seconds,
        },
        metrics={
            f"{case_id}/{k}": v
            for case_id, m in measurements.items()
            for mm in spec.metrics
            for k, v in ab_summary(m, mm).items()
        },
        checks={"expectation": {"ok": ok, "message": message}},
        repeats=[
            {
                "case": case_id,
                "side": window.side,
                "pair": window.pair,
                "set_aside": window.pair in measurements[case_id].set_aside,
                "outside_cores": round(window.outside_cores, 3),
                "window": window.result.checks["client"]["window"],  # on the clock device telemetry is stamped by
                **window.result.metrics,
            }
            for case_id, window in windows
        ],
        gates=[
            v.as_json()
            | {"case": case_id, "enforced": True, "comparison": comparison.name, "expect": comparison.expect}
            for case_id, v in zip(of_case, verdicts, strict=True)
        ],
    )
    return Compared(result, measurements, verdicts, ok, message, tuple(of_case))
