"""A/B comparison in one run: the plan's `ab:` section (harness/config/ab.py).

Each comparison measures the reference and a candidate build in turn and judges the paired difference with the
gate (harness/ab). The verdict is enforced: a comparison without `expect` fails its test on a regression; one with
`expect` (the CPU plan's A/A and planted slowdowns) fails when the gate does not give that verdict.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.ab.compare import ab_cases, compare
from harness.ab.sides import build_of
from harness.bench.cases import LoadSettings
from harness.config.ab import ABComparison
from harness.config.plan import Plan
from harness.load.tokens import Tokens
from harness.plugins.recording import RecordCase, policy_of
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
    where = f"ab.comparisons.{spec.comparisons.index(ab_comparison)}.candidate"
    builds = {
        "reference": build_of(plan, spec.reference, "ab.reference", served_model, model_cache),
        "candidate": build_of(
            plan, ab_comparison.candidate, where, served_model, model_cache, f"ab-{ab_comparison.name}"
        ),
    }  # every side checked before either server starts
    reference = server_pool.get(builds["reference"].config)
    candidate = server_pool.get(builds["candidate"].config, alongside=builds["reference"].config)
    servers = {"reference": reference, "candidate": candidate}
    policy = spec.policy(policy_of(plan))
    compared = compare(spec, ab_comparison, servers, builds, served_tokens, load, policy, ab_cases(spec, plan))
    record_case(compared.result)
    for measured in compared.measurements.values():
        for window in measured.windows:
            check_case(window.result, measured.requests_per_window)
    assert compared.ok, f"A/B {ab_comparison.name}: {compared.message}"
