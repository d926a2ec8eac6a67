"""The highest request rate the server sustains within the plan's latency objectives (suites.sla).

Bracket, then bisect (harness.capacity.rate_search); each rate a dynamic case under the measurement protocol with
repeats, judged with confidence (harness.gates.slo). The knee is recorded as `capacity.sla` (gated against the
baseline like any throughput), each step as `capacity.sla.step`, and plotted against the objectives in the report.
The assertions are about the search, not the speed: it closed its bracket, the knee's every objective held, and the
rate above it missed one.
"""

from __future__ import annotations

import dataclasses

import pytest

from harness.bench.cases import LoadSettings
from harness.capacity.sla import knee_result, run_sla_search
from harness.config.plan import Plan
from harness.load.tokens import Tokens
from harness.plugins.recording import RecordCase
from harness.run import Run
from harness.server.endpoint import Endpoint

pytestmark = [pytest.mark.serving, pytest.mark.capacity]


def test_max_rate_within_slo(
    plan: Plan,
    endpoint: Endpoint,
    served_tokens: Tokens,
    load: LoadSettings,
    record_case: RecordCase,
    llmqual_run: Run,
) -> None:
    spec = plan.suites.sla
    if spec is None:
        pytest.skip("the plan has no suites.sla section")
    found, steps = run_sla_search(
        endpoint, served_tokens, spec, load, llmqual_run.directory / "capacity" / "sla", print
    )
    for step in steps:
        record_case(dataclasses.replace(step, suite="capacity.sla.step"))
    record_case(knee_result(found, spec, steps))
    assert found.stopped is None, found.stopped
    assert found.knee is not None, f"the objectives are not met even at rate-low {spec.rate_low:g} req/s: " + (
        found.steps[0].reason
    )
    assert found.above is not None, f"every rate up to rate-high {spec.rate_high:g} req/s held: raise rate-high"
    assert found.above / found.knee - 1 <= spec.precision
    by_rate = {s.rate: s for s in found.steps}
    assert all(v.outcome == "holds" for v in by_rate[found.knee].verdicts), by_rate[found.knee].reason
    assert not by_rate[found.above].sustainable
