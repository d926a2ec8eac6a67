"""The client's clock against the server's (harness/metrics/clock.py) and the histograms the scrape keeps."""

from __future__ import annotations

import pytest

from harness.metrics.clock import server_clock
from harness.server.prometheus import counter_totals

# As vLLM 0.32's /metrics writes them (abridged): one histogram per model name, bucket lines omitted by none.
EXPOSITION = """# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_sum{engine="0",model_name="tiny-llama"} 3.2
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.001",model_name="tiny-llama"} 0.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="tiny-llama"} 160.0
vllm:time_to_first_token_seconds_count{engine="0",model_name="tiny-llama"} 160.0
# HELP vllm:e2e_request_latency_seconds Histogram of e2e request latency in seconds.
# TYPE vllm:e2e_request_latency_seconds histogram
vllm:e2e_request_latency_seconds_sum{engine="0",model_name="tiny-llama"} 48.0
vllm:e2e_request_latency_seconds_bucket{engine="0",le="+Inf",model_name="tiny-llama"} 160.0
vllm:e2e_request_latency_seconds_count{engine="0",model_name="tiny-llama"} 160.0
# HELP vllm:inter_token_latency_seconds Histogram of inter-token latency in seconds.
# TYPE vllm:inter_token_latency_seconds histogram
vllm:inter_token_latency_seconds_sum{engine="0",model_name="tiny-llama"} 9.0
vllm:inter_token_latency_seconds_count{engine="0",model_name="tiny-llama"} 900.0
# HELP vllm:prefix_cache_hits_total Prefix cache hits.
# TYPE vllm:prefix_cache_hits_total counter
vllm:prefix_cache_hits_total{engine="0",model_name="tiny-llama"} 12.0
"""


def test_the_scrape_keeps_the_clock_histograms_sum_and_count() -> None:
    totals = counter_totals(EXPOSITION)
    assert totals["vllm:time_to_first_token_seconds:sum"] == pytest.approx(3.2)
    assert totals["vllm:time_to_first_token_seconds:count"] == 160
    assert totals["vllm:e2e_request_latency_seconds:count"] == 160
    assert "vllm:inter_token_latency_seconds:sum" not in totals, "only the histograms the clock reads"
    assert totals["vllm:prefix_cache_hits"] == 12


BEFORE = {"vllm:time_to_first_token_seconds:sum": 1.0, "vllm:time_to_first_token_seconds:count": 96.0,
          "vllm:e2e_request_latency_seconds:sum": 20.0, "vllm:e2e_request_latency_seconds:count": 96.0,
          "vllm:request_queue_time_seconds:sum": 0.1, "vllm:request_queue_time_seconds:count": 96.0}  # fmt: skip
AFTER = {"vllm:time_to_first_token_seconds:sum": 1.64, "vllm:time_to_first_token_seconds:count": 128.0,
         "vllm:e2e_request_latency_seconds:sum": 29.6, "vllm:e2e_request_latency_seconds:count": 128.0,
         "vllm:request_queue_time_seconds:sum": 0.132, "vllm:request_queue_time_seconds:count": 128.0}  # fmt: skip


def test_the_server_means_are_the_windows_and_the_overhead_the_difference() -> None:
    clock = server_clock(BEFORE, AFTER, {"mean_ttft_ms": 22.0, "mean_e2el_ms": 303.0}, completed=32, share=0.25)
    assert clock["server_requests"] == 32
    assert clock["server_mean_ttft_ms"] == pytest.approx(20.0)
    assert clock["server_mean_e2el_ms"] == pytest.approx(300.0)
    assert clock["server_mean_queue_ms"] == pytest.approx(1.0)
    assert clock["ttft_overhead_ms"] == pytest.approx(2.0)
    assert clock["e2el_overhead_ms"] == pytest.approx(3.0)
    assert clock["flag"] is False


def test_a_client_far_behind_the_server_is_flagged() -> None:
    clock = server_clock(BEFORE, AFTER, {"mean_ttft_ms": 40.0, "mean_e2el_ms": 330.0}, completed=32, share=0.25)
    assert clock["flag"] is True
    assert "20.0 ms above the server's (20.0 ms)" in str(clock["message"])


def test_requests_the_client_did_not_send_in_the_window_are_flagged() -> None:
    clock = server_clock(BEFORE, AFTER, {"mean_ttft_ms": 21.0, "mean_e2el_ms": 301.0}, completed=16, share=0.25)
    assert clock["flag"] is True
    assert "the server counted 32 requests in the window, the client completed 16" in str(clock["message"])


def test_a_server_without_the_histograms_says_so() -> None:
    clock = server_clock({}, {"vllm:prefix_cache_hits": 1.0}, {"mean_ttft_ms": 21.0}, completed=4, share=0.25)
    assert clock["flag"] is None
    assert "no TTFT histogram" in str(clock["message"])
