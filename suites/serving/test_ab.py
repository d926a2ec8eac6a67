"""A/B comparison in one run: the plan's `ab:` section (harness/config/ab.py).

Each comparison measures the reference and a candidate server configuration in turn and judges the paired
difference with the gate. The verdict is enforced: a comparison without `expect` fails its test on a regression;
one with `expect` (the CPU plan's A/A and planted slowdown) fails when the gate does not give that verdict.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from harness.bench.ab import ab_summary, ab_verdicts, measure_ab, meets_expectation
from harness.bench.cases import LoadSettings, StaticCase
from harness.config.ab import ABComparison
from harness.config.plan import Plan
from harness.load.tokens import Tokens
from harness.plugins.recording import RecordCase, policy_of
from harness.results.case import CaseResult
from harness.served import serving_config
from harness.server.pool import ServerPool
from suites.serving.checks import check_case

pytestmark = [pytest.mark.serving, pytest.mark.ab]


def test_ab(
    request: pytest.FixtureRequest,
    ab_comparison: ABComparison,
    plan: Plan,
    server_pool: ServerPool,
    served_tokens: Tokens,
    load: LoadSettings,
    record_case: RecordCase,
    model_cache: Path,
    served_model: Path,
) -> None:
    spec = plan.ab
    assert spec is not None  # the comparison came from it
    if request.config.getoption("--endpoint"):
        pytest.skip("an A/B comparison starts its own servers; it cannot run against --endpoint")
    model = served_model
    reference = serving_config(plan.server_with(spec.reference), model, model_cache)
    candidate = dataclasses.replace(
        serving_config(plan.server_with(ab_comparison.candidate), model, model_cache), label=f"ab-{ab_comparison.name}"
    )
    ref = server_pool.get(reference).endpoint
    cand = server_pool.get(candidate, alongside=reference).endpoint
    w = spec.workload
    case = StaticCase(w.parallel_num, w.prompt_tokens, w.output_tokens, 1)
    pairs = ab_comparison.pairs or spec.pairs
    measured = measure_ab(ref, cand, served_tokens, case, load, pairs, ab_comparison.name)
    verdicts = ab_verdicts(measured, spec.metrics, policy_of(plan))
    ok, message = meets_expectation(verdicts, ab_comparison.expect)
    result = CaseResult(
        suite="serving.ab",
        case_id=ab_comparison.name,
        config={
            "reference": spec.reference,
            "candidate": ab_comparison.candidate,
            "expect": ab_comparison.expect,
            "pairs": pairs,
            "parallel_num": w.parallel_num,
            "prompt_tokens": w.prompt_tokens,
            "output_tokens": w.output_tokens,
            "requests_per_repeat": measured.requests_per_repeat,
        },
        metrics={k: v for m in spec.metrics for k, v in ab_summary(measured, m).items()},
        checks={"expectation": {"ok": ok, "message": message}},
        repeats=[
            {"side": side, **r.metrics}
            for pair in zip(measured.reference, measured.candidate, strict=True)
            for side, r in zip(("reference", "candidate"), pair, strict=True)
        ],
        gates=[
            v.as_json() | {"enforced": True, "comparison": ab_comparison.name, "expect": ab_comparison.expect}
            for v in verdicts
        ],
    )
    record_case(result)
    for side in (measured.reference, measured.candidate):
        for one in side:
            check_case(one, measured.requests_per_repeat)
    assert ok, f"A/B {ab_comparison.name}: {message}"
