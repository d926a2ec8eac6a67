"""Trace replay, multi-turn sessions and correctness under load, without a server: the plan sections' rules, the
checks on given numbers and texts (each shown failing), what a turn could reuse, and the server's KV block read from
its /metrics text."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from pydantic import ValidationError

from harness.bench.cases import BenchInputError
from harness.bench.consistency import consistency_verdict, divergences, exercised
from harness.bench.replay import hit_rate_verdict, load_trace
from harness.bench.replay_command import replay_spec
from harness.bench.sessions import Turn, reachable, rising_verdict
from harness.client.openai import RequestRecord
from harness.config.workloads import ReplaySpec, SessionsSpec
from harness.errors import PlanError
from harness.load.datasets import DatasetError
from harness.load.traces import implied_hit_rate
from harness.server.prometheus import counter_totals

GENERATED = {"generate": {"count": 40, "rate": 5, "shared": 3}, "block-size": 128}


def test_a_replay_section_names_one_trace() -> None:
    with pytest.raises(ValidationError, match="either trace"):
        ReplaySpec.model_validate({})
    with pytest.raises(ValidationError, match="either trace"):
        ReplaySpec.model_validate({"trace": "t.jsonl", **GENERATED})
    with pytest.raises(ValidationError, match="tail-blocks"):
        ReplaySpec.model_validate({"generate": {"tail-blocks": [3, 1]}})
    with pytest.raises(ValidationError, match="drop format: burstgpt"):
        ReplaySpec.model_validate({**GENERATED, "format": "burstgpt"})


def test_a_generated_trace_is_kept_with_the_run_and_shares_prefixes(tmp_path: Path) -> None:
    spec = ReplaySpec.model_validate(GENERATED)
    trace, path = load_trace(spec, lambda p: tmp_path / p, tmp_path / "out")
    assert path == tmp_path / "out" / "trace.jsonl"
    assert len(path.read_text().splitlines()) == 40
    assert len(trace.requests) == 40
    assert trace.block_size == 128
    assert 0.2 < implied_hit_rate(trace) < 0.8, "shared first blocks, own tails"
    cut = ReplaySpec.model_validate({**GENERATED, "max-requests": 7})
    assert len(load_trace(cut, lambda p: tmp_path / p, tmp_path / "cut")[0].requests) == 7


def test_a_missing_trace_file_names_itself_before_anything_starts(tmp_path: Path) -> None:
    spec = ReplaySpec.model_validate({"trace": "missing.jsonl"})
    with pytest.raises(DatasetError, match=r"missing\.jsonl"):
        load_trace(spec, lambda p: tmp_path / p, tmp_path / "out")


@pytest.mark.parametrize(
    ("measured", "queries", "outcome", "words"),
    [
        (0.42, 9000.0, "pass", "measured hit rate 42.0%, the trace implies 45.0%"),
        (0.02, 9000.0, "fail", "did not reuse what the trace shares"),
        (0.70, 9000.0, "fail", "share more than their hash ids say"),
        (None, 0.0, "fail", "looked nothing up in a prefix cache (is prefix caching off?)"),
        (None, None, "not_shown", "exports no prefix-cache counters"),
    ],
)
def test_the_replay_hit_rate_must_agree_with_the_trace(
    measured: float | None, queries: float | None, outcome: str, words: str
) -> None:
    verdict = hit_rate_verdict(0.45, measured, 0.1, queries)
    assert verdict.outcome == outcome
    assert words in verdict.message


def turns(rates: list[float | None], reach: list[float | None]) -> list[Turn]:
    return [Turn(i + 1, (), rate, r) for i, (rate, r) in enumerate(zip(rates, reach, strict=True))]


def test_the_session_hit_rate_must_rise_with_the_turn() -> None:
    rising = rising_verdict(turns([0.0, 0.35, 0.5, 0.6], [None, 0.41, 0.57, 0.65]))
    assert rising.outcome == "pass"
    assert rising.change == pytest.approx(0.6)
    off = rising_verdict(turns([0.0, 0.0, 0.0, 0.0], [None, 0.41, 0.57, 0.65]))
    assert off.outcome == "fail"
    assert "turn 2 0.0% of a reachable 41.0%" in off.message
    flat = rising_verdict(turns([0.3, 0.3], [None, 0.0]))
    assert flat.outcome == "fail"
    assert "no more than the first" in flat.message
    unknown = rising_verdict(turns([None, 0.3], [None, 0.4]))
    assert unknown.outcome == "not_shown"


def test_what_a_turn_could_reuse_is_the_previous_prompt_in_whole_blocks() -> None:
    assert reachable([170, 200], [310, 330], 128) == pytest.approx((128 + 128) / 640)
    assert reachable([], [170], 128) is None, "the first turn has no previous prompt"
    with pytest.raises(ValidationError):
        SessionsSpec.model_validate({"turns": 1})


def test_the_servers_kv_block_is_read_from_its_cache_config_info() -> None:
    text = (
        "# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig\n"
        "# TYPE vllm:cache_config_info gauge\n"
        'vllm:cache_config_info{block_size="128",cache_dtype="auto",engine="0"} 1.0\n'
    )
    assert counter_totals(text)["vllm:cache_config_info:block_size"] == 128.0


def options(**given: object) -> argparse.Namespace:
    names = ("trace", "format", "block_size", "speedup", "cache_block", "hit_rate_tolerance", "max_requests")
    return argparse.Namespace(**{name: given.get(name) for name in names})


def test_the_commands_options_override_the_plans_replay(tmp_path: Path) -> None:
    planned = ReplaySpec.model_validate(GENERATED)
    assert replay_spec(options(speedup=4.0), planned, "p.yaml").speedup == 4.0
    from_file = replay_spec(options(trace="t.csv", format="burstgpt"), planned, "p.yaml")
    assert from_file.generate is None
    assert from_file.trace is not None
    assert from_file.trace.endswith("t.csv")
    with pytest.raises(PlanError, match=r"suites\.replay"):
        replay_spec(options(), None, "p.yaml")
    with pytest.raises(BenchInputError, match="--speedup"):
        replay_spec(options(speedup=0.0), planned, "p.yaml")


def answered(*texts: str) -> list[RequestRecord]:
    return [RequestRecord(text=text) for text in texts]


def test_greedy_answers_that_part_are_named_with_where_and_both_texts() -> None:
    alone = answered("the cat sat", "on the mat", "same")
    loaded = answered("the cat sat", "on the hat", "same")
    loaded.append(RequestRecord(error="http", error_detail="HTTP 500"))
    alone.append(RequestRecord(text="x"))
    found = divergences(alone, loaded)
    assert found == [
        {"request": 1, "char": 7, "alone": "mat", "under_load": "hat"},
        {"request": 3, "error": "HTTP 500"},
    ]
    verdict = consistency_verdict(found, 4, 4)
    assert verdict.outcome == "fail"
    assert "2 of 4 greedy answers differ at concurrency 4" in verdict.message
    assert "request 1 parts at character 7: alone 'mat', under load 'hat'" in verdict.message
    assert consistency_verdict([], 4, 4).outcome == "pass"
    assert divergences(answered("ab"), answered("abc"))[0]["char"] == 2, "one is a prefix of the other"


def test_what_the_loaded_run_put_to_the_test_is_said_from_the_servers_counters() -> None:
    both = {"prefix_cache_hit_rate": 0.8, "prefix_cache_queries": 5120.0, "spec_decode_drafts": 321.0}
    assert exercised(both) == "the prefix cache served 80% of the prompt tokens; 321 speculative drafts were checked"
    missed = {"prefix_cache_hit_rate": 0.0, "prefix_cache_queries": 2048.0, "spec_decode_drafts": None}
    assert "looked up but never hit (is the shared prefix shorter than a KV block?)" in exercised(missed)
    off = {"prefix_cache_hit_rate": None, "prefix_cache_queries": 0.0, "spec_decode_drafts": 0.0}
    assert exercised(off) == "the server counted neither prefix-cache hits nor speculative drafts"
