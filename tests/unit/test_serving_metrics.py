"""Serving metrics against hand-computed cases (definitions: docs/measurement.md)."""

from __future__ import annotations

import pytest

from harness.client.openai import RequestRecord
from harness.metrics.serving import SLO, summarise, tpot
from harness.metrics.stats import describe
from tests.unit.records import done, failed


def test_two_requests_by_hand() -> None:
    # A: sent 0.0, events 0.1 0.2 0.4 (3 tokens) -> TTFT 100, E2EL 400, TPOT (400-100)/2 = 150, ITLs 100 200
    # B: sent 0.5, events 0.8 1.0 (2 tokens, 20 prompt) -> TTFT 300, E2EL 500, TPOT 200, ITL 200
    records = [done(0.0, [0.1, 0.2, 0.4]), done(0.5, [0.8, 1.0], prompt=20)]
    m = summarise(records)
    assert m["completed"] == 2
    assert m["failed"] == 0
    assert m["total_input_tokens"] == 30
    assert m["total_output_tokens"] == 5
    assert m["duration"] == pytest.approx(1.0)  # first send 0.0 to last content 1.0
    assert m["request_throughput"] == pytest.approx(2.0)
    assert m["output_throughput"] == pytest.approx(5.0)
    assert m["total_token_throughput"] == pytest.approx(35.0)
    assert m["mean_ttft_ms"] == pytest.approx(200.0)
    assert m["median_ttft_ms"] == pytest.approx(200.0)
    assert m["max_ttft_ms"] == pytest.approx(300.0)
    assert m["mean_tpot_ms"] == pytest.approx(175.0)  # averaged over requests
    assert m["mean_itl_ms"] == pytest.approx(500.0 / 3)  # pooled over events: 100, 200, 200
    assert m["p50_itl_ms"] == pytest.approx(200.0)
    assert m["mean_e2el_ms"] == pytest.approx(450.0)
    assert m["request_goodput"] is None, "no SLO given: goodput is not measured"
    assert m["mean_request_output_throughput"] == pytest.approx((3 / 0.4 + 2 / 0.5) / 2)


def test_percentiles_interpolate_like_numpy() -> None:
    values = [float(v) / 1000 for v in range(1, 101)]  # 1..100 ms
    d = describe(values, "ttft")
    assert d["p90_ttft_ms"] == pytest.approx(90.1)
    assert d["p99_ttft_ms"] == pytest.approx(99.01)
    assert d["max_ttft_ms"] == pytest.approx(100.0)


def test_single_token_requests_have_no_tpot_but_count_for_goodput() -> None:
    one = done(0.0, [0.05], out=1)
    assert tpot(one) is None
    m = summarise([one], SLO(ttft_ms=100, tpot_ms=1))
    assert m["mean_tpot_ms"] is None, "no request with two tokens: TPOT is missing, not 0"
    assert m["request_goodput"] == pytest.approx(1 / 0.05), "TPOT counts as 0 for the SLO, as vLLM does"


def test_goodput_counts_only_requests_meeting_every_slo() -> None:
    fast = done(0.0, [0.05, 0.06, 0.07])  # TTFT 50 ms, TPOT 10 ms
    slow_first = done(0.0, [0.5, 0.51])  # TTFT 500 ms
    slow_decode = done(0.0, [0.05, 0.25, 0.45])  # TPOT 200 ms
    m = summarise([fast, slow_first, slow_decode], SLO(ttft_ms=100, tpot_ms=50))
    assert m["request_goodput"] == pytest.approx(1 / 0.51)


def test_failures_are_counted_by_class_and_excluded_from_latency() -> None:
    records = [
        done(0.0, [0.1, 0.2]),
        failed(0.0, "http", 500),
        failed(0.0, "http", 500),
        failed(0.1, "timeout"),
        failed(0.1, "stream"),
        RequestRecord(sent=0.2, status=200),  # succeeded with no content event
    ]
    m = summarise(records)
    assert m["completed"] == 1
    assert m["failed"] == 5
    assert m["failures"] == {"http_500": 2, "no_content": 1, "stream": 1, "timeout": 1}
    assert m["mean_ttft_ms"] == pytest.approx(100.0)


def test_a_run_where_nothing_completed_reports_missing_not_zero() -> None:
    m = summarise([failed(0.0, "connection"), failed(0.0, "connection")])
    assert m["completed"] == 0
    assert m["duration"] is None
    assert m["request_throughput"] is None
    assert m["output_throughput"] is None
    for key in ("mean_ttft_ms", "p99_tpot_ms", "max_itl_ms", "median_e2el_ms"):
        assert m[key] is None, key


def test_missing_usage_is_reported_and_not_counted_as_tokens() -> None:
    no_usage = done(0.0, [0.1, 0.2, 0.3])
    no_usage.completion_tokens = None
    m = summarise([no_usage, done(0.0, [0.1, 0.2])])
    assert m["missing_usage"] == 1
    assert m["total_output_tokens"] == 2
    assert m["mean_tpot_ms"] == pytest.approx(100.0), "TPOT needs the token count: only the second request has it"


def test_requests_cut_by_the_deadline_before_sending_do_not_start_the_clock() -> None:
    records = [failed(0.0, "not_sent"), done(2.0, [2.5])]
    assert summarise(records)["duration"] == pytest.approx(0.5)
