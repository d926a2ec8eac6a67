"""One A/B comparison, measured and judged, as the case document both `pytest` (suites/serving/test_ab.py) and
`llmqual ab` write: the builds, every window in order (side, pair, the metrics, the outside CPU), the pairs set
aside, the verdict per metric, and whether the plan's expectation was met."""

from __future__ import annotations

import contextlib
import dataclasses
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Literal

from harness.ab.measure import ABMeasurement, ab_summary, ab_verdicts, measure_ab, meets_expectation
from harness.ab.sides import Build
from harness.bench.cases import LoadSettings, StaticCase
from harness.config.ab import ABComparison, ABSpec
from harness.gates.gate import GatePolicy
from harness.gates.verdict import Outcome, Verdict, overall
from harness.load.tokens import Tokens
from harness.results.case import CaseResult
from harness.server.pause import held
from harness.server.vllm import VLLMServer

SUITE = "serving.ab"


@dataclass(frozen=True)
class Compared:
    """A comparison's outcome: its case document, its verdicts, and whether the plan's expectation was met."""

    result: CaseResult
    measured: ABMeasurement
    verdicts: list[Verdict]
    ok: bool
    message: str

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


def compare(
    spec: ABSpec,
    comparison: ABComparison,
    servers: dict[str, VLLMServer],
    builds: dict[str, Build],
    tokens: Tokens,
    settings: LoadSettings,
    policy: GatePolicy,
) -> Compared:
    """Measure `comparison` on the running `servers` ("reference", "candidate") and judge it."""
    w = spec.workload
    case = StaticCase(w.parallel_num, w.prompt_tokens, w.output_tokens, 1)
    pairs = comparison.pairs or spec.pairs
    if spec.min_seconds is not None:
        settings = dataclasses.replace(settings, min_seconds=spec.min_seconds)
    endpoints = {side: server.endpoint for side, server in servers.items()}

    def hold(side: str) -> AbstractContextManager[None]:
        return held(servers[side]) if spec.idle == "pause" else contextlib.nullcontext()

    measured = measure_ab(endpoints, tokens, case, settings, pairs, comparison.name, hold, spec.max_outside_cpu)
    verdicts = ab_verdicts(measured, spec.metrics, policy)
    ok, message = meets_expectation(verdicts, comparison.expect)
    result = CaseResult(
        suite=SUITE,
        case_id=comparison.name,
        config={
            "reference": builds["reference"].as_json(),
            "candidate": builds["candidate"].as_json(),
            "expect": comparison.expect,
            "pairs": pairs,
            "pairs_measured": len({w.pair for w in measured.windows}),
            "pairs_set_aside": len(measured.set_aside),
            "idle": spec.idle,
            "max_outside_cpu": spec.max_outside_cpu,
            "outside_cores_max": round(measured.outside_cores_max, 3),
            "parallel_num": w.parallel_num,
            "prompt_tokens": w.prompt_tokens,
            "output_tokens": w.output_tokens,
            "requests_per_window": measured.requests_per_window,
            "min_seconds": settings.min_seconds,
        },
        metrics={k: v for m in spec.metrics for k, v in ab_summary(measured, m).items()},
        checks={"expectation": {"ok": ok, "message": message}},
        repeats=[
            {
                "side": window.side,
                "pair": window.pair,
                "set_aside": window.pair in measured.set_aside,
                "outside_cores": round(window.outside_cores, 3),
                **window.result.metrics,
            }
            for window in measured.windows
        ],
        gates=[
            v.as_json() | {"enforced": True, "comparison": comparison.name, "expect": comparison.expect}
            for v in verdicts
        ],
    )
    return Compared(result, measured, verdicts, ok, message)
