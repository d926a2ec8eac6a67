"""The EAGLE draft head trainer (harness.training.eagle): what it saves is the layout vLLM's `eagle` method loads
(llama_eagle.py: `fc`, the shared embedding, one layer without its input norm, no lm_head), and it learns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors import safe_open

from harness.config.model import EagleDraftSpec, TinyModelSpec
from harness.config.plan import load_plan
from harness.errors import PlanError
from harness.model.tiny import ensure_tiny_model
from harness.training.eagle import ensure_eagle_draft

TEXT = {"hidden-size": 64, "num-layers": 2, "num-heads": 2, "intermediate-size": 128, "vocab-size": 400}


def test_the_draft_head_is_saved_as_vllm_loads_it_and_learns(tmp_path: Path) -> None:
    target = ensure_tiny_model(TinyModelSpec.model_validate(TEXT), tmp_path)
    spec = EagleDraftSpec.model_validate(
        {"steps": 60, "sequences": 16, "batch-size": 8, "prompt-tokens": 8, "generated-tokens": 24, "log-every": 20}
    )
    draft = ensure_eagle_draft(target, spec, tmp_path)
    config = json.loads((draft / "config.json").read_text())
    assert config["num_hidden_layers"] == 1
    assert config["hidden_size"] == 64
    with safe_open(str(draft / "model.safetensors"), "pt") as weights:
        names = set(weights.keys())
        assert tuple(weights.get_tensor("fc.weight").shape) == (64, 128)
    assert {
        "fc.weight",
        "embed_tokens.weight",
        "layers.0.self_attn.q_proj.weight",
        "layers.0.mlp.down_proj.weight",
    } <= names
    assert not any(n.startswith("layers.0.input_layernorm") or n.startswith("lm_head") for n in names)
    log = [json.loads(line) for line in (draft / "eagle_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 20, 40, 60]
    assert log[-1]["token_loss"] < log[0]["token_loss"]
    assert ensure_eagle_draft(target, spec, tmp_path) == draft  # cached


PLAN = """
name: t
platform: cpu
model: {tiny: {hidden-size: 64, num-layers: 1, num-heads: 2, intermediate-size: 128, eagle: {steps: 10}}}
"""


@pytest.mark.parametrize(
    "speculative",
    ["", "server: {speculative-config: {method: ngram, num_speculative_tokens: 3}}\n",
     "server: {speculative-config: {method: eagle, model: /x, num_speculative_tokens: 3}}\n"],
)  # fmt: skip
def test_an_eagle_head_needs_an_eagle_speculative_config_without_a_model(tmp_path: Path, speculative: str) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN + speculative)
    with pytest.raises(PlanError, match="without a model"):
        load_plan(path)


def test_the_served_config_names_the_trained_head_and_never_serves_without_it(tmp_path: Path) -> None:
    from harness.served import serving_config
    from harness.server.vllm import server_config

    path = tmp_path / "plan.yaml"
    path.write_text(PLAN + "server: {speculative-config: {method: eagle, num_speculative_tokens: 2}}\n")
    plan = load_plan(path)
    assert plan.model.tiny is not None
    target = ensure_tiny_model(plan.model.tiny, tmp_path)
    with pytest.raises(ValueError, match=r"model\.tiny\.eagle needs its trained draft"):
        server_config(plan, target, tmp_path)  # a caller that forgot the head gets no server without a draft
    config = serving_config(plan, target, tmp_path)
    assert config.spec.speculative_config is not None
    draft = Path(config.spec.speculative_config["model"])
    assert (draft / "model.safetensors").is_file()
    assert config.spec.speculative_config["method"] == "eagle"
