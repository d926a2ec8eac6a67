"""Workloads from production: a trace replayed at its own times (`suites.replay`).

The trace's requests go out at the trace's arrival times (divided by the plan's speed-up), their prompts made so
that equal hash ids are identical blocks of tokens. Besides what every serving case must show, the server's own
prefix-cache hit rate over the replay must agree with the one the trace implies: a server that does not reuse the
shared prefixes (prefix caching off), or prompts that do not honour the ids, fail here.
"""

from __future__ import annotations

import pytest

from harness.bench.cases import LoadSettings
from harness.bench.replay import load_trace, run_replay
from harness.config.plan import Plan
from harness.load.tokens import Tokens
from harness.plugins.recording import RecordCase
from harness.run import Run
from harness.server.endpoint import Endpoint
from suites.serving.checks import check_case

pytestmark = pytest.mark.serving


def test_replay(
    plan: Plan, endpoint: Endpoint, served_tokens: Tokens, load: LoadSettings, record_case: RecordCase, llmqual_run: Run
) -> None:
    spec = plan.suites.replay
    if spec is None:
        pytest.skip("the plan has no suites.replay trace")
    trace, path = load_trace(spec, plan.relative, llmqual_run.directory / "serving" / "replay")
    case_id = f"{path.stem}-x{spec.speedup:g}"
    result = run_replay(endpoint, served_tokens, trace, spec, load, case_id)
    result.config["trace"] = str(path)
    record_case(result)
    check_case(result, len(trace.requests))
    verdict = result.checks["replay"]
    assert verdict["outcome"] == "pass", verdict["message"]
