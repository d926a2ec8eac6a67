"""Dynamic serving benchmark: requests arrive on a Poisson (or gamma) schedule from a dataset (open loop).

One case per (request-rate, num-prompts) pair of the plan, over the plan's dataset. Results are written as each
case finishes. Assertions are about behaviour: every request completed, the token audit is clean, the client kept
to its schedule, and goodput is measured when the plan gives SLOs. Speed is reported, not asserted.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.bench.cases import DynamicCase, LoadSettings
from harness.bench.execute import repeated, run_dynamic
from harness.bench.from_plan import dynamic_workload
from harness.config.plan import Plan
from harness.load.tokens import Tokens
from harness.server.endpoint import Endpoint
from harness.session import RecordCase
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
) -> None:
    spec = plan.suites.dynamic
    assert spec is not None  # the case came from it
    dataset, samples = dynamic_workload(plan, spec, served_tokens, model_cache, dynamic_case.num_prompts)
    result = repeated(lambda: run_dynamic(endpoint, served_tokens, dynamic_case, load, samples, dataset), repeats)
    record_case(result, "dynamic")
    check_case(result, dynamic_case.num_prompts)
    assert result.metrics["total_output_tokens"] == sum(s.output_len for s in samples)
    if dynamic_case.slo.given():
        goodput = result.metrics["request_goodput"]
        assert goodput is not None, "goodput was not measured"
        assert 0 <= goodput <= result.metrics["request_throughput"]
