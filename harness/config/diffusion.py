"""The diffusion suite's plan section: text-to-image latency per image and images/s for a grid of resolutions,
step counts and batch sizes, through diffusers' pipeline (in a worker process) or a running ComfyUI server.

Resolutions are `HEIGHTxWIDTH` strings, as the ModelArts guides write them (`688x1024`). The pipeline packs its
latents in 2x2 patches, so a side must be a multiple of twice the VAE's scale factor (16 for FLUX.1-dev); that
multiple depends on the model's VAE and is checked when the cases are made (harness.diffusion.cases).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from harness.config.base import Frozen

RESOLUTION = re.compile(r"^(?P<height>\d+)x(?P<width>\d+)$")
MAX_SIDE = 8192


def parse_resolution(text: str) -> tuple[int, int]:
    """(height, width) of "HEIGHTxWIDTH"; ValueError naming what is wrong."""
    match = RESOLUTION.match(text.strip())
    if match is None:
        raise ValueError(f"resolution {text!r} is not HEIGHTxWIDTH (e.g. 688x1024)")
    height, width = int(match["height"]), int(match["width"])
    if not (0 < height <= MAX_SIDE and 0 < width <= MAX_SIDE):
        raise ValueError(f"resolution {text!r}: each side must be between 1 and {MAX_SIDE} pixels")
    return height, width


class ComfyUISpec(Frozen):
    """A running ComfyUI server (pytest's --comfyui-url) given an API-format workflow whose latent-image node takes
    the case's width, height and batch size, and whose sampler (or scheduler) node takes its steps."""

    workflow: str = Field(min_length=1, description="workflow JSON in ComfyUI's API format, relative to the plan")
    timeout_s: float = Field(600.0, gt=0, description="deadline of one queued prompt, queueing included")
    poll_s: float = Field(0.1, gt=0, le=10, description="how often /history is asked while a prompt runs")


class DiffusionSpec(Frozen):
    """Text-to-image cases: every resolution x steps x batch size, each measured as the serving cases are (warm-up
    calls first, then the plan's gates.repeats windows of `calls` calls, fresh prompts for every call)."""

    model: str = Field(
        "tiny", min_length=1, description="`tiny` (a Flux pipeline built here) or a diffusers folder, plan-relative"
    )
    resolutions: tuple[str, ...] = Field(("64x64",), min_length=1, description="HEIGHTxWIDTH of each case")
    steps: tuple[int, ...] = Field((4,), min_length=1, description="num_inference_steps of each case")
    batch_sizes: tuple[int, ...] = Field((1,), min_length=1, description="images per call (one prompt each)")
    guidance_scale: float = Field(3.5, ge=0)
    max_sequence_length: int = Field(64, ge=1, le=512, description="T5 prompt tokens (Flux)")
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    warmup_calls: int = Field(1, ge=0, description="calls per case before its measurement, not measured")
    calls: int = Field(4, ge=1, description="calls per measured window (one repeat)")
    timeout_s: float = Field(1800.0, gt=0, description="deadline of one case (the pipeline's load included)")
    seed: int = Field(0, ge=0)
    comfyui: ComfyUISpec | None = None

    @field_validator("resolutions")
    @classmethod
    def _resolutions_parse(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for text in value:
            parse_resolution(text)
        return value

    @field_validator("steps", "batch_sizes")
    @classmethod
    def _positive(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(v < 1 for v in value):
            raise ValueError(f"{list(value)}: every value must be at least 1")
        return value
