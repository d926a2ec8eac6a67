"""The tiny vision-language model: an Idefics3 (SmolVLM's architecture) around the tiny Llama, built offline.

vLLM's CPU build serves it without torchvision (LLaVA, Qwen2-VL, Gemma 3 and InternVL all import it, and no
torchvision works beside the CPU torch); transformers' PIL image processor prepares its images. Its parts:

- a SigLIP-style vision transformer over `image-size` tiles cut in `patch-size` patches;
- the connector: a pixel shuffle by `scale-factor` and a linear map into the Llama's width, so a tile becomes
  (image-size / patch-size)^2 / scale-factor^2 `<image>` tokens;
- the tiny Llama as the text model, with the image tokens added to its tokenizer;
- the processor (`processor_config.json`): an image is resized so its longer side is `longest-edge`, split into
  tiles of `image-size` (a `<row_r_col_c>` marker before each) plus the whole image downscaled to one tile
  (`<global-img>`), each wrapped in `<fake_token_around_image>`;
- a chat template that puts `<image>` where the message's image part is, so vLLM's chat endpoint expands it.

Random weights like the text model's: the suite measures the work images add (encoding tiles, longer prompts),
not what the model says.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.config.model import TinyModelSpec, TinyVisionSpec

IMAGE, FAKE_AROUND, GLOBAL, END_OF_UTTERANCE = (
    "<image>",
    "<fake_token_around_image>",
    "<global-img>",
    "<end_of_utterance>",
)
VISION_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def add_image_tokens(tokenizer: Any) -> None:
    tokenizer.add_special_tokens({"additional_special_tokens": [FAKE_AROUND, IMAGE, GLOBAL, END_OF_UTTERANCE]})
    tokenizer.chat_template = VISION_CHAT_TEMPLATE


def vision_config(spec: TinyModelSpec, vision: TinyVisionSpec, tokenizer: Any, text: dict[str, Any]) -> Any:
    from transformers import Idefics3Config

    encoder = {
        "hidden_size": vision.hidden_size,
        "intermediate_size": 2 * vision.hidden_size,
        "num_hidden_layers": vision.num_layers,
        "num_attention_heads": vision.num_heads,
        "image_size": vision.image_size,
        "patch_size": vision.patch_size,
        "num_channels": 3,
    }
    return Idefics3Config(
        vision_config=encoder,
        text_config=text,
        scale_factor=vision.scale_factor,
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE),
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )


def save_vision_model(spec: TinyModelSpec, vision: TinyVisionSpec, tokenizer: Any, text: Any, out: Path) -> None:
    """The Idefics3 model (random weights from the spec's seed) and its processor, into `out`."""
    import torch
    from transformers import Idefics3ForConditionalGeneration, Idefics3Processor
    from transformers.models.idefics3 import Idefics3ImageProcessorPil

    config = vision_config(spec, vision, tokenizer, text.to_dict())
    model = Idefics3ForConditionalGeneration(config)  # type: ignore[no-untyped-call]
    generator = torch.Generator().manual_seed(spec.seed)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            if name.endswith(("norm.weight", "layernorm.weight", "layer_norm1.weight", "layer_norm2.weight")):
                param.fill_(1.0)
            else:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.02)
    model.save_pretrained(out, safe_serialization=True)
    images = Idefics3ImageProcessorPil(
        do_image_splitting=True,
        size={"longest_edge": vision.longest_edge},
        max_image_size={"longest_edge": vision.image_size},
    )
    processor = Idefics3Processor(
        image_processor=images,
        tokenizer=tokenizer,
        image_seq_len=vision.tokens_per_tile,
        chat_template=VISION_CHAT_TEMPLATE,
    )
    processor.save_pretrained(out)
