"""Workloads from production: multi-turn chat sessions (`suites.sessions`).

N users each hold a conversation of K turns; every turn's prompt is the whole history, so later turns can reuse
the KV of earlier ones. Per-turn TTFT is reported; the server's own prefix-cache hit rate per turn must rise with
the turn (harness.bench.sessions says by how much), which a server without prefix caching fails.
"""

from __future__ import annotations

import pytest

from harness.bench.cases import LoadSettings
from harness.bench.sessions import run_sessions
from harness.config.plan import Plan
from harness.load.tokens import Tokens
from harness.plugins.recording import RecordCase
from harness.server.endpoint import Endpoint

pytestmark = pytest.mark.serving


def test_sessions(
    plan: Plan, endpoint: Endpoint, served_tokens: Tokens, load: LoadSettings, record_case: RecordCase
) -> None:
    spec = plan.suites.sessions
    if spec is None:
        pytest.skip("the plan has no suites.sessions conversations")
    result = run_sessions(endpoint, served_tokens, spec, load)
    record_case(result)
    failures = result.metrics["failures"]
    assert result.metrics["completed"] == spec.users * spec.turns, f"failed requests by class: {failures}"
    assert result.valid, "; ".join(result.invalid_reasons)
    verdict = result.checks["sessions"]
    assert verdict["outcome"] == "pass", verdict["message"]
