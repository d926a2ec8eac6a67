"""Production traces: Mooncake's JSONL and BurstGPT's CSV read with named errors, the generator's traces read back,
and the prefix-cache hit rate a trace implies, computed by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.load.datasets import DatasetError
from harness.load.samples import Sample, payload
from harness.load.traces import (
    Trace,
    TraceRequest,
    generate_mooncake,
    implied_hit_rate,
    read_burstgpt,
    read_mooncake,
    trace_samples,
)

# Lines of the shape Mooncake's published trace has (timestamps in ms; 512-token blocks; a shared first block).
MOONCAKE = [
    {"timestamp": 0, "input_length": 1200, "output_length": 50, "hash_ids": [0, 1, 2]},
    {"timestamp": 0, "input_length": 1100, "output_length": 40, "hash_ids": [0, 1, 3]},
    {"timestamp": 2500, "input_length": 600, "output_length": 30, "hash_ids": [0, 4]},
]


def write_lines(path: Path, lines: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_a_mooncake_trace_is_read_in_arrival_order(tmp_path: Path) -> None:
    trace = read_mooncake(write_lines(tmp_path / "t.jsonl", MOONCAKE))
    assert [r.arrival_s for r in trace.requests] == [0.0, 0.0, 2.5]
    assert trace.requests[1] == TraceRequest(0.0, 1100, 40, (0, 1, 3))


def test_the_implied_hit_rate_counts_whole_blocks_whose_prefix_was_seen(tmp_path: Path) -> None:
    trace = read_mooncake(write_lines(tmp_path / "t.jsonl", MOONCAKE))
    # request 2 reuses blocks 0 and 1 (1,024 tokens), request 3 block 0 (512); 2,900 input tokens in all
    assert implied_hit_rate(trace) == pytest.approx((1024 + 512) / 2900)
    scrambled = Trace(tuple(TraceRequest(r.arrival_s, r.input_length, r.output_length, tuple(
        100 * n + i for i in range(len(r.hash_ids)))) for n, r in enumerate(trace.requests)), 512)  # fmt: skip
    assert implied_hit_rate(scrambled) == 0.0
    partial = Trace((TraceRequest(0, 100, 1, (7,)), TraceRequest(1, 100, 1, (7,))), 512)
    assert implied_hit_rate(partial) == 0.0, "a partial block is never cached"


def test_the_same_block_after_a_different_prefix_is_not_a_hit() -> None:
    trace = Trace((TraceRequest(0, 1024, 1, (0, 5)), TraceRequest(1, 1024, 1, (1, 5))), 512)
    assert implied_hit_rate(trace) == 0.0


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("{not json", "t.jsonl:2: not JSON"),
        ("[1, 2]", "t.jsonl:2: a list, not an object"),
        ('{"timestamp": -1, "input_length": 10, "output_length": 1, "hash_ids": [0]}', "timestamp is -1"),
        ('{"timestamp": 0, "input_length": 0, "output_length": 1, "hash_ids": []}', "input_length is 0"),
        ('{"timestamp": 0, "input_length": 600, "output_length": 1, "hash_ids": [0]}', "1 hash_ids for 600 input"),
        ('{"timestamp": 0, "input_length": 10, "output_length": 1, "hash_ids": ["a"]}', "list of integers"),
    ],
)
def test_a_bad_line_names_the_file_the_line_and_the_field(tmp_path: Path, line: str, words: str) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(MOONCAKE[0]) + "\n" + line + "\n")
    with pytest.raises(DatasetError, match=words):
        read_mooncake(path)


def test_a_burstgpt_csv_is_read_relative_to_its_first_request(tmp_path: Path) -> None:
    path = tmp_path / "b.csv"
    path.write_text(
        "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
        "5.0,ChatGPT,600,20,620,Conversation log\n"
        "7.5,GPT-4,100,0,100,Conversation log\n"
        "6.0,ChatGPT,30,10,40,API log\n"
    )
    trace = read_burstgpt(path)
    assert [(r.arrival_s, r.input_length, r.output_length) for r in trace.requests] == [(0.0, 600, 20), (1.0, 30, 10)]
    assert trace.left_out == 1  # the failed request (0 response tokens)
    assert implied_hit_rate(trace) == 0.0  # no prefix information: every request is its own blocks
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DatasetError, match="not a BurstGPT CSV"):
        read_burstgpt(tmp_path / "x.csv")


def test_a_generated_trace_reads_back_and_implies_reuse(tmp_path: Path) -> None:
    lines = generate_mooncake(200, 4.0, 64, shared=4, tail=(1, 3), output=(8, 16), seed=0)
    assert lines == generate_mooncake(200, 4.0, 64, shared=4, tail=(1, 3), output=(8, 16), seed=0)
    trace = read_mooncake(write_lines(tmp_path / "g.jsonl", lines), block_size=64)
    assert len(trace.requests) == 200
    assert 0.15 < trace.requests[-1].arrival_s / 199 < 0.35  # Poisson arrivals at 4 req/s: 0.25 s apart on average
    assert 0.2 < implied_hit_rate(trace) < 0.8


def test_the_implied_hit_rate_rounds_to_the_engines_kv_block() -> None:
    trace = Trace((TraceRequest(0, 1200, 1, (0, 1, 2)), TraceRequest(1, 1100, 1, (0, 1, 3))), 512)
    assert implied_hit_rate(trace, 512) == pytest.approx(1024 / 2300)
    assert implied_hit_rate(trace, 384) == pytest.approx(768 / 2300), "1,024 reusable tokens are two 384-blocks"
    whole = Trace((TraceRequest(0, 1024, 1, (0, 1)), TraceRequest(1, 1024, 1, (0, 1))), 512)
    # the same whole prompt again: the engine still computes its last token, so the last block is not a hit
    assert implied_hit_rate(whole, 128) == pytest.approx(896 / 2048)


def test_equal_hash_ids_give_identical_token_blocks_and_different_ids_different_ones() -> None:
    trace = Trace(
        (TraceRequest(0, 300, 4, (7, 8, 9)), TraceRequest(1, 280, 5, (7, 8, 10)), TraceRequest(2, 150, 6, (11, 12))),
        128,
    )
    vocabulary = list(range(3, 500))
    first, second, third = trace_samples(trace, vocabulary, seed=1)
    assert (first.prompt_len, first.output_len, len(first.prompt_ids or ())) == (300, 4, 300)
    assert first.prompt_ids is not None
    assert second.prompt_ids is not None
    assert third.prompt_ids is not None
    assert first.prompt_ids[:256] == second.prompt_ids[:256], "ids 7 and 8 shared"
    assert first.prompt_ids[256:280] != second.prompt_ids[256:280], "ids 9 and 10 differ"
    assert first.prompt_ids[:128] != third.prompt_ids[:128]
    assert set(first.prompt_ids) <= set(vocabulary)
    assert trace_samples(trace, vocabulary, seed=1) == [first, second, third], "reproducible"
    assert trace_samples(trace, vocabulary, seed=2)[0] != first


def test_token_id_prompts_go_out_as_a_list_of_ids_on_completions_only() -> None:
    sample = Sample("", 3, 2, prompt_ids=(5, 6, 7))
    assert payload(sample, "completions", ignore_eos=True)["prompt"] == [5, 6, 7]
    with pytest.raises(ValueError, match="completions"):
        payload(sample, "chat", ignore_eos=True)
