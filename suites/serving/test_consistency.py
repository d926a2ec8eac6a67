"""Correctness under load (`suites.consistency`): greedy answers equal alone and at concurrency N.

The prompts share a prefix, so under load they hit the prefix cache; with the plan's speculative decoding or P/D
deployment those are exercised too. Any divergence is named with its request, where it parts and both texts.
"""

from __future__ import annotations

import pytest

from harness.bench.cases import LoadSettings
from harness.bench.consistency import run_consistency
from harness.config.plan import Plan
from harness.load.tokens import Tokens
from harness.plugins.recording import RecordCase
from harness.server.endpoint import Endpoint
from suites.serving.checks import check_case

pytestmark = pytest.mark.serving


def test_greedy_answers_do_not_change_under_load(
    plan: Plan, endpoint: Endpoint, served_tokens: Tokens, load: LoadSettings, record_case: RecordCase
) -> None:
    spec = plan.suites.consistency
    if spec is None:
        pytest.skip("the plan has no suites.consistency section")
    result = run_consistency(endpoint, served_tokens, spec, load)
    record_case(result)
    check_case(result, spec.prompts)
    verdict = result.checks["consistency"]
    assert verdict["outcome"] == "pass", verdict["message"]
