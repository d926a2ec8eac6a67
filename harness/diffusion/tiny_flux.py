"""The tiny Flux: a text-to-image pipeline of diffusers' `FluxPipeline` with small random components, built here.

Built the way diffusers' own tests build dummy Flux components (a small `FluxTransformer2DModel`, CLIP and T5 text
encoders, an `AutoencoderKL`, the flow-matching Euler scheduler), with tokenizers of its own: one byte-level BPE
trained on the project's corpus, saved as the CLIP tokenizer (77 tokens) and the T5 tokenizer. Nothing is
downloaded. Its images are noise, and that is enough: the suite measures the pipeline's work per image (text
encoding, `steps` transformer passes over the packed latents, the VAE decode), which depends on the sizes, not on
what the weights learnt. Sized so that one 64x64 image takes a few tenths of a second on one CPU core: long enough
to time, short enough for the main job.

Built once into `<cache>/models/tiny-flux-<digest>/` (harness.model.build). The build imports torch and diffusers,
so it runs in the diffusion worker process, never in pytest's.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from harness.model.build import build_once

BUILDER_VERSION = 1
MARKER = "llmqual-tiny-flux.json"
# The architecture (diffusers' and transformers' argument names). The VAE has two blocks: scale factor 2, so a side
# must be a multiple of 4 (2 x 2, the transformer's 2x2 latent patches).
TRANSFORMER: dict[str, Any] = {
    "patch_size": 1,
    "in_channels": 16,  # 4 latent channels x 2 x 2 packed
    "num_layers": 2,
    "num_single_layers": 4,
    "attention_head_dim": 32,
    "num_attention_heads": 4,
    "joint_attention_dim": 64,  # the T5 encoder's width
    "pooled_projection_dim": 64,  # the CLIP encoder's width
    "axes_dims_rope": [8, 12, 12],  # sums to attention_head_dim
}
VAE: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "block_out_channels": [32, 64],
    "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"],
    "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"],
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 8,
    "sample_size": 64,
    "use_quant_conv": False,
    "use_post_quant_conv": False,
    "shift_factor": 0.0609,
    "scaling_factor": 1.5035,
}
TEXT_WIDTH = 64
VOCAB_SIZE = 1000
CLIP_MAX_TOKENS = 77
T5_MAX_TOKENS = 512
SEED = 0
PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"


def tiny_flux_multiple() -> int:
    """What each image side must be a multiple of: 2 x the VAE's scale factor."""
    return 1 << len(VAE["block_out_channels"])  # 2 x 2 ** (blocks - 1)


def tiny_flux_dir(cache: Path) -> Path:
    recipe = {"builder": BUILDER_VERSION, "transformer": TRANSFORMER, "vae": VAE, "text": TEXT_WIDTH, "seed": SEED}
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
    return cache / "models" / f"tiny-flux-{digest}"


def ensure_tiny_flux(cache: Path) -> Path:
    """The tiny Flux's folder (a diffusers pipeline folder), building it first if it is not in the cache."""
    return build_once(tiny_flux_dir(cache), MARKER, build_tiny_flux)


def _tokenizer(max_length: int) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from harness.model.corpus import corpus

    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=[PAD, BOS, EOS, UNK],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(SEED, 400), trainer)
    # An end token after the text, as CLIP's and T5's tokenizers add: CLIP pools its output at that token.
    tok.post_processor = processors.TemplateProcessing(single=f"$A {EOS}", special_tokens=[(EOS, tok.token_to_id(EOS))])
    return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tok, pad_token=PAD, bos_token=BOS, eos_token=EOS, unk_token=UNK, model_max_length=max_length
    )


def build_tiny_flux(out: Path) -> None:
    """Write the pipeline folder (model_index.json and one folder per component) into `out`."""
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    clip_tokenizer, t5_tokenizer = _tokenizer(CLIP_MAX_TOKENS), _tokenizer(T5_MAX_TOKENS)
    special = {
        "pad_token_id": clip_tokenizer.pad_token_id,
        "bos_token_id": clip_tokenizer.bos_token_id,
        "eos_token_id": clip_tokenizer.eos_token_id,
    }
    torch.manual_seed(SEED)  # this runs in the worker process, whose global generator is its own
    clip = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(clip_tokenizer),
            hidden_size=TEXT_WIDTH,
            intermediate_size=2 * TEXT_WIDTH,
            num_attention_heads=4,
            num_hidden_layers=2,
            projection_dim=TEXT_WIDTH,
            max_position_embeddings=CLIP_MAX_TOKENS,
            **special,
        )
    )
    t5 = T5EncoderModel(
        T5Config(
            vocab_size=len(t5_tokenizer),
            d_model=TEXT_WIDTH,
            d_kv=16,
            d_ff=2 * TEXT_WIDTH,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            **special,
        )
    )
    pipeline: Any = FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        text_encoder=clip,
        tokenizer=clip_tokenizer,
        text_encoder_2=t5,
        tokenizer_2=t5_tokenizer,
        transformer=FluxTransformer2DModel(**TRANSFORMER),
        vae=AutoencoderKL(**VAE),
    )
    pipeline.save_pretrained(out, safe_serialization=True)
    recipe = {"builder": BUILDER_VERSION, "transformer": TRANSFORMER, "vae": VAE, "seed": SEED}
    (out / MARKER).write_text(json.dumps(recipe, indent=2, sort_keys=True) + "\n", encoding="utf-8")
