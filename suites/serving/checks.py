"""What every serving case must show, whatever the hardware: behaviour and consistency, never absolute speed."""

from __future__ import annotations

from harness.results.case import CaseResult


def check_case(result: CaseResult, expected_requests: int) -> None:
    """What every serving case must show, whatever the hardware."""
    m = result.metrics
    assert m["completed"] == expected_requests, f"failed requests by class: {m['failures']}"
    assert result.valid, "invalid measurement: " + "; ".join(result.invalid_reasons)
    problems = result.checks["token_audit"]["problems"]
    assert not problems, "token audit: " + "; ".join(problems)
    for key in ("output_throughput", "mean_ttft_ms", "p99_ttft_ms", "mean_e2el_ms"):
        assert m[key] is not None, f"{key} was not measured"
        assert m[key] > 0, f"{key} is {m[key]}"
