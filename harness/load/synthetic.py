"""Workloads the harness makes itself: exact-length random prompts, shared-prefix prompts, prompts with images.

Every generator takes the random generator as a parameter; the same seed gives the same workload.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from harness.errors import HarnessError
from harness.load.samples import Sample
from harness.load.tokens import Tokens


def random_samples(
    tokens: Tokens, count: int, input_len: int, output_len: int, rng: np.random.Generator
) -> list[Sample]:
    """`count` random prompts of exactly `input_len` tokens, each asking for `output_len` tokens."""
    return [Sample(text, input_len, output_len) for text in tokens.texts_of_length(count, input_len, rng)]


def prefix_samples(
    tokens: Tokens, count: int, prefix_len: int, input_len: int, output_len: int, rng: np.random.Generator
) -> list[Sample]:
    """Prompts of `input_len` tokens whose first `prefix_len` tokens are the same text (a prefix-cache workload)."""
    if not 0 < prefix_len < input_len:
        raise ValueError(f"the shared prefix ({prefix_len} tokens) must be shorter than the prompt ({input_len})")
    prefix = tokens.text_of_length(prefix_len, rng)
    return [Sample(tokens.text_of_length(input_len, rng, prefix=prefix), input_len, output_len) for _ in range(count)]


def png_data_url(height: int, width: int, rng: np.random.Generator) -> str:
    """A random RGB image of the given size as a PNG data URL, made locally."""
    from PIL import Image

    pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def image_samples(
    tokens: Tokens,
    count: int,
    input_len: int,
    output_len: int,
    height: int,
    width: int,
    rng: np.random.Generator,
    served_len: Callable[[str, tuple[str, ...]], int] | None = None,
) -> list[Sample]:
    """Chat prompts of `input_len` text tokens, each with one image of `height` x `width` pixels; `served_len`
    counts what the server will count for a prompt and its images (harness.load.vision), for the token audit."""
    samples = []
    for _ in range(count):
        prompt, images = tokens.text_of_length(input_len, rng), (png_data_url(height, width, rng),)
        served = served_len(prompt, images) if served_len is not None else None
        samples.append(Sample(prompt, input_len, output_len, images, served))
    return samples


VISION_KEYS = ("vision_config", "visual", "vision_tower", "mm_vision_tower", "image_token_index", "image_token_id")


def vision_support(model_dir: str | Path) -> str | None:
    """None when the model takes images; otherwise why not (for a skip reason)."""
    config_path = Path(model_dir) / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HarnessError(f"cannot read {config_path} to tell whether the model takes images: {exc}") from exc
    if any(key in config for key in VISION_KEYS):
        return None
    arch = ", ".join(config.get("architectures") or ["unknown architecture"])
    return f"the model at {model_dir} ({arch}) is text-only: its config.json has no vision encoder"
