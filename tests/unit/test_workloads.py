"""Workloads: exact-length prompts, dataset loaders in their public formats, the generator and the converter."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.bench.cases import StaticCase
from harness.bench.workloads import PrefixWorkload, closed_case
from harness.config.workloads import PrefixSpec
from harness.load.convert import LengthDistribution, generate_records, to_sharegpt
from harness.load.datasets import DatasetError, load_dataset, select
from harness.load.samples import Sample, payload
from harness.load.synthetic import image_samples, prefix_samples, random_samples, vision_support
from harness.load.tokens import Tokens


@pytest.mark.parametrize("length", [1, 2, 17, 256, 1000])
def test_random_prompts_have_exactly_the_asked_length(tokens: Tokens, length: int) -> None:
    samples = random_samples(tokens, 5, length, 8, np.random.default_rng(length))
    assert [tokens.prompt_len(s.prompt) for s in samples] == [length] * 5
    assert all(s.prompt_len == length and s.output_len == 8 for s in samples)
    assert len({s.prompt for s in samples}) == 5 or length <= 2


def test_prefix_prompts_share_their_prefix_and_keep_their_length(tokens: Tokens) -> None:
    samples = prefix_samples(tokens, 4, 48, 64, 4, np.random.default_rng(0))
    prefix = _common_start([s.prompt for s in samples])
    assert tokens.prompt_len(prefix) >= 47, "the shared text is the 48-token prefix (a merge may move one token)"
    assert [tokens.prompt_len(s.prompt) for s in samples] == [64] * 4


def test_image_prompts_are_chat_payloads_with_a_png(tokens: Tokens) -> None:
    (sample,) = image_samples(tokens, 1, 16, 4, 32, 48, np.random.default_rng(0))
    body = payload(sample, "chat", ignore_eos=True)
    content = body["messages"][0]["content"]
    assert content[0]["type"] == "text"
    assert content[1]["image_url"]["url"].startswith("data:image/png;base64,")
    with pytest.raises(ValueError, match="chat endpoint"):
        payload(sample, "completions", ignore_eos=True)


def test_text_only_models_are_told_apart_from_vision_models(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    reason = vision_support(tmp_path)
    assert reason is not None
    assert "LlamaForCausalLM" in reason
    (tmp_path / "config.json").write_text(
        json.dumps({"architectures": ["Qwen2VLForConditionalGeneration"], "vision_config": {}})
    )
    assert vision_support(tmp_path) is None


def test_payloads_follow_the_endpoint() -> None:
    sample = Sample("hi", 2, 7)
    assert payload(sample, "completions", True) == {
        "prompt": "hi",
        "max_tokens": 7,
        "stream": True,
        "temperature": 0.0,
        "ignore_eos": True,
    }
    chat = payload(sample, "chat", False)
    assert chat["messages"] == [{"role": "user", "content": "hi"}]
    assert "ignore_eos" not in chat


FILES = {
    "sharegpt": [
        {
            "id": "a",
            "conversations": [
                {"from": "human", "value": "Why is the sky blue?"},
                {"from": "gpt", "value": "Rayleigh scattering of light."},
            ],
        },
        {"id": "b", "conversations": [{"from": "human", "value": "only a question"}]},
    ],
    "alpaca": [{"instruction": "Summarise the text.", "input": "The cat sat.", "output": "A cat sat down."}],
    "custom": [{"input": "Translate: good morning", "output": "bonjour tout le monde"}],
}


@pytest.mark.parametrize("kind", sorted(FILES))
def test_dataset_files_load_in_their_public_format(tokens: Tokens, tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"{kind}.json"
    path.write_text(json.dumps(FILES[kind]), encoding="utf-8")
    samples = load_dataset(path, kind, tokens)
    assert len(samples) == 1, "records without an answer are skipped"
    assert samples[0].prompt_len == tokens.prompt_len(samples[0].prompt)
    assert samples[0].output_len > 0


def test_alpaca_prompt_joins_instruction_and_input(tokens: Tokens, tmp_path: Path) -> None:
    path = tmp_path / "alpaca.json"
    path.write_text(json.dumps(FILES["alpaca"]))
    assert load_dataset(path, "alpaca", tokens)[0].prompt == "Summarise the text.\nThe cat sat."


def test_human_eval_jsonl(tokens: Tokens, tmp_path: Path) -> None:
    record = {"task_id": "HumanEval/0", "prompt": "def add(a, b):\n", "canonical_solution": "    return a + b\n"}
    path = tmp_path / "he.jsonl"
    path.write_text(json.dumps(record) + "\n" + json.dumps(record) + "\n")
    samples = load_dataset(path, "human-eval", tokens)
    assert len(samples) == 2
    assert samples[0].output_len == tokens.output_len("    return a + b\n")


@pytest.mark.parametrize(
    ("content", "kind", "message"),
    [
        ("", "custom", "the dataset is empty"),
        ("{not json", "custom", "not JSON or JSON Lines"),
        ('[{"question": "q", "answer": "a"}]', "custom", "has no text field 'input'"),
        ('[{"input": "q", "output": "a"}]', "sharegpt", "no 'conversations' list"),
        ('[{"input": "q", "output": "a"}]', "sharegtp", "did you mean 'sharegpt'"),
    ],
)
def test_bad_datasets_fail_with_the_file_and_the_fix(
    tokens: Tokens, tmp_path: Path, content: str, kind: str, message: str
) -> None:
    path = tmp_path / "data.json"
    path.write_text(content)
    with pytest.raises(DatasetError, match=message) as info:
        load_dataset(path, kind, tokens)
    assert str(path) in str(info.value) or "dataset type" in str(info.value)


def test_an_unreadable_dataset_names_the_file(tokens: Tokens, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="cannot read the dataset"):
        load_dataset(tmp_path / "missing.json", "custom", tokens)


def test_select_filters_reuses_and_fixes_output_lengths() -> None:
    pool = [Sample("a", 10, 5), Sample("b", 100, 5), Sample("c", 10, 50)]
    assert [s.prompt for s in select(pool, 4, max_prompt_tokens=20, max_tokens=10)] == ["a"] * 4
    fixed = select(pool, 3, fixed_output_len=8)
    assert [s.output_len for s in fixed] == [8, 8, 8]
    with pytest.raises(DatasetError, match="no sample passes the filters"):
        select(pool, 1, max_prompt_tokens=5)


def test_generated_records_have_the_drawn_lengths_and_convert_to_sharegpt(tokens: Tokens, tmp_path: Path) -> None:
    inputs, outputs = LengthDistribution(40, 10, 8, 60), LengthDistribution(12, 4, 4, 20)
    records = generate_records(tokens, 30, inputs, outputs, np.random.default_rng(3))
    in_lens = [tokens.prompt_len(r["input"]) - tokens.special_overhead() for r in records]
    out_lens = [tokens.output_len(r["output"]) for r in records]
    assert all(8 <= n <= 60 for n in in_lens)
    assert all(4 <= n <= 20 for n in out_lens)
    assert abs(np.mean(in_lens) - 40) < 6
    path = tmp_path / "custom.json"
    path.write_text(json.dumps(records))
    custom = load_dataset(path, "custom", tokens)
    assert [s.output_len for s in custom] == out_lens

    conversations = to_sharegpt([{"sys": "Be brief.", **r} for r in records], "input", "output", "sys")
    assert conversations[0]["conversations"][0]["value"] == "Be brief.\n" + records[0]["input"]
    assert conversations[0]["conversations"][1] == {"from": "gpt", "value": records[0]["output"]}
    path.write_text(json.dumps(conversations))
    assert len(load_dataset(path, "sharegpt", tokens)) == 30


def test_to_sharegpt_names_a_missing_field() -> None:
    with pytest.raises(DatasetError, match="record 1 has no field 'answer'"):
        to_sharegpt([{"q": "x", "answer": "y"}, {"q": "x"}], "q", "answer")


def test_length_distribution_is_validated() -> None:
    with pytest.raises(ValueError, match="min <= max"):
        LengthDistribution(10, 1, 20, 5)


def test_the_prefix_workload_shares_a_prefix_within_a_measurement_and_not_across(tokens: Tokens) -> None:
    spec = PrefixSpec.model_validate({"prefix-tokens": 24, "prompt-tokens": 32, "num-prompts": 10, "parallel-num": 4})
    assert closed_case(spec) == StaticCase(4, 32, 16, 3), "whole waves covering num-prompts"
    workload = PrefixWorkload(spec, tokens)
    first, second = workload(np.random.default_rng(1), 3), workload(np.random.default_rng(2), 3)
    shared = _common_start([s.prompt for s in first])
    assert tokens.prompt_len(shared) >= 23, "one measurement's prompts share the 24-token prefix"
    assert len(_common_start([first[0].prompt, second[0].prompt])) < 8, "another measurement has its own"
    assert all(tokens.prompt_len(s.prompt) == 32 for s in first + second)


def _common_start(texts: list[str]) -> str:
    """The longest text every one of `texts` starts with."""
    start = texts[0]
    while not all(t.startswith(start) for t in texts):
        start = start[:-1]
    return start
