"""Dynamic serving benchmark: requests arrive on a Poisson (or gamma) schedule from a dataset (open loop).

One case per (request-rate, num-prompts) pair of the plan, over the plan's dataset. Results are written as each
case finishes. Assertions are about behaviour: every request completed, the token audit is clean, the client kept
to its schedule, and goodput is measured when the plan gives SLOs. Speed is reported, not asserted.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.bench.cases import DynamicCase, LoadSettings
from harness.bench.from_plan import dynamic_workload, plan_dynamic_cases
from harness.bench.measure import measure_dynamic, profiled_dynamic_window
from harness.config.plan import Plan
from harness.load.tokens import Tokens
from harness.plugins.recording import RecordCase
from harness.profile.fixtures import Profiler
from harness.server.endpoint import Endpoint
from suites.serving.checks import check_case

pytestmark = pytest.mark.serving


def test_dynamic(
    dynamic_case: DynamicCase,
    plan: Plan,
    endpoint: Endpoint,
    served_tokens: Tokens,
    load: LoadSettings,
    record_case: RecordCase,
    repeats: int,
    model_cache: Path,
    profiler: Profiler,
) -> None:
    spec = plan.suites.dynamic
    assert spec is not None  # the case came from it
    dataset, records = dynamic_workload(plan, spec, served_tokens, model_cache)
    index = plan_dynamic_cases(plan).index(dynamic_case)  # which slices of the dataset are this case's
    result = measure_dynamic(
        endpoint, served_tokens, dynamic_case, load, repeats, records, dataset, index, record_case.progress
    )
    record_case(result, "dynamic")
    profile = profiler(
        dynamic_case.id,
        endpoint,
        lambda: profiled_dynamic_window(endpoint, served_tokens, dynamic_case, load, records, dataset, result),
    )
    if profile is not None:
        record_case(profile)
    check_case(result, result.config["num_requests"])
    if dynamic_case.slo.given():
        goodput = result.metrics["request_goodput"]
        assert goodput is not None, "goodput was not measured"
        assert 0 <= goodput <= result.metrics["request_throughput"]
