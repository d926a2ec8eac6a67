"""What every serving case must show, whatever the hardware: behaviour and consistency, never absolute speed."""

from __future__ import annotations

from harness.metric_names import MEAN_E2EL_MS, MEAN_TTFT_MS, OUTPUT_THROUGHPUT, P99_TTFT_MS
from harness.results.case import CaseResult


def check_case(result: CaseResult, expected_requests: int) -> None:
    """What every serving case must show, whatever the hardware."""
    m = result.metrics
    assert m["completed"] == expected_requests, f"failed requests by class: {m['failures']}"
    assert result.valid, "invalid measurement: " + "; ".join(result.invalid_reasons)
    problems = result.checks["token_audit"]["problems"]
    assert not problems, "token audit: " + "; ".join(problems)
    for key in (OUTPUT_THROUGHPUT, MEAN_TTFT_MS, P99_TTFT_MS, MEAN_E2EL_MS):
        assert m[key] is not None, f"{key} was not measured"
        assert m[key] > 0, f"{key} is {m[key]}"
