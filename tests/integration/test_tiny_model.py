"""The tiny model is built offline, deterministically, once."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config.model import TinyModelSpec
from harness.model.tiny import MARKER, build_tiny_model, ensure_tiny_model

pytestmark = pytest.mark.integration

SPEC = TinyModelSpec(hidden_size=64, num_heads=2, intermediate_size=128, vocab_size=400, corpus_sentences=500)


def contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_same_spec_gives_byte_identical_files(tmp_path: Path) -> None:
    build_tiny_model(SPEC, tmp_path / "a")
    build_tiny_model(SPEC, tmp_path / "b")
    first = contents(tmp_path / "a")
    assert {"config.json", "model.safetensors", "tokenizer.json", MARKER} <= set(first)
    assert first == contents(tmp_path / "b")
    build_tiny_model(SPEC.model_copy(update={"seed": 1}), tmp_path / "c")
    assert contents(tmp_path / "c")["model.safetensors"] != first["model.safetensors"]


def test_built_once_then_reused(tmp_path: Path) -> None:
    folder = ensure_tiny_model(SPEC, tmp_path)
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert ensure_tiny_model(SPEC, tmp_path) == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp
    assert folder.name == f"tiny-{SPEC.digest()}"


def test_the_model_loads_and_the_chat_template_renders(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = ensure_tiny_model(SPEC, tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert len(tokenizer) == SPEC.vocab_size
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    ids = tokenizer("The model serves the prompt.")["input_ids"]
    assert tokenizer.decode(ids, skip_special_tokens=True) == "The model serves the prompt."
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert model.config.hidden_size == 64
    assert model.config.num_hidden_layers == SPEC.num_layers
