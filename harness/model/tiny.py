"""The tiny Llama: a byte-level BPE tokenizer trained here and a randomly initialised model, built offline (with
`vision:`, the tiny vision-language model of harness.model.tiny_vision around it).

Deterministic: the same TinyModelSpec gives byte-identical files (no global random state is touched; weights
come from a local torch.Generator). Built once into `<cache>/models/tiny-<digest>/` and reused after; concurrent
builders (pytest-xdist workers) serialise on a file lock and the folder appears atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.config.model import TinyModelSpec
from harness.errors import ModelBuildError
from harness.model.build import build_once
from harness.model.corpus import corpus
from harness.model.tiny_vision import add_image_tokens, save_vision_model

BOS, EOS, PAD = "<|begin_of_text|>", "<|end_of_text|>", "<|pad|>"
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = (BOS, EOS, PAD, IM_START, IM_END)

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
MARKER = "llmqual-tiny.json"


def tiny_model_dir(spec: TinyModelSpec, cache: Path) -> Path:
    """Where the model for `spec` lives (built or not)."""
    return cache / "models" / f"tiny-{spec.digest()}"


def ensure_tiny_model(spec: TinyModelSpec, cache: Path) -> Path:
    """The folder of the tiny model for `spec`, building it first if it is not in the cache."""
    return build_once(tiny_model_dir(spec, cache), MARKER, lambda out: build_tiny_model(spec, out))


def build_tiny_model(spec: TinyModelSpec, out: Path) -> None:
    """Write tokenizer, chat template, config and safetensors weights for `spec` into `out`."""
    try:
        tokenizer = train_tokenizer(spec)
        if spec.vision is not None:
            add_image_tokens(tokenizer)
        tokenizer.save_pretrained(out)
        _save_model(spec, tokenizer, out)
    except (ImportError, OSError, ValueError, RuntimeError) as exc:
        raise ModelBuildError(f"building the tiny model into {out} failed: {exc}") from exc
    (out / MARKER).write_text(json.dumps(spec.model_dump(), indent=2, sort_keys=True) + "\n", encoding="utf-8")


def train_tokenizer(spec: TinyModelSpec) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(spec.seed, spec.corpus_sentences), trainer)
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)]
    )
    return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=IM_END,
        pad_token=PAD,
        additional_special_tokens=[IM_START, IM_END],
        chat_template=CHAT_TEMPLATE,
        model_max_length=spec.max_position_embeddings,
    )


def _save_model(spec: TinyModelSpec, tokenizer: Any, out: Path) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_heads,
        head_dim=spec.head_dim or spec.hidden_size // spec.num_heads,
        max_position_embeddings=spec.max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.convert_tokens_to_ids(IM_END),
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        dtype="float32",
    )
    if spec.vision is not None:
        save_vision_model(spec, spec.vision, tokenizer, config, out)
        return
    model = LlamaForCausalLM(config)  # type: ignore[no-untyped-call]
    generator = torch.Generator().manual_seed(spec.seed)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            if name.endswith("norm.weight"):
                param.fill_(1.0)
            else:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.02)
    model.save_pretrained(out, safe_serialization=True)
