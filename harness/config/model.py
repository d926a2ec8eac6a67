"""The model a plan serves: a Hugging Face folder, or the tiny Llama the harness builds itself."""

from __future__ import annotations

import hashlib
import json

from pydantic import Field, model_validator

from harness.config.base import Frozen


class TinyVisionSpec(Frozen):
    """A vision encoder in front of the tiny Llama: the model becomes an Idefics3 (SmolVLM's architecture: a SigLIP
    vision transformer, a pixel-shuffle connector, the Llama as its text model), which vLLM's CPU build serves
    without torchvision. An image is resized so its longer side is `longest-edge`, cut into `image-size` tiles
    plus one downscaled whole, and each tile becomes (image-size / patch-size)^2 / scale-factor^2 image tokens."""

    image_size: int = Field(64, ge=16, le=1024, description="the vision encoder's input side (one tile)")
    patch_size: int = Field(16, ge=2, le=64)
    hidden_size: int = Field(64, ge=16, le=512)
    num_layers: int = Field(2, ge=1, le=8)
    num_heads: int = Field(2, ge=1, le=16)
    scale_factor: int = Field(2, ge=1, le=4, description="the connector's pixel shuffle: tokens / scale-factor^2")
    longest_edge: int = Field(128, ge=16, le=8192, description="images are resized to this longer side first")

    @model_validator(mode="after")
    def _tiles_fit(self) -> TinyVisionSpec:
        side = self.image_size // self.patch_size
        if self.image_size % self.patch_size or side % self.scale_factor:
            raise ValueError("image-size must be patch-size x a multiple of scale-factor")
        if self.longest_edge % self.image_size:
            raise ValueError("longest-edge must be a multiple of image-size (whole tiles)")
        if self.hidden_size % self.num_heads:
            raise ValueError("hidden-size must be divisible by num-heads")
        return self

    @property
    def tokens_per_tile(self) -> int:
        return (self.image_size // self.patch_size) ** 2 // self.scale_factor**2


class EagleDraftSpec(Frozen):
    """An EAGLE draft head for the tiny model, trained here by self-distillation (harness.training.eagle) and served
    as the draft of the plan's `server.speculative-config` (method eagle; the harness fills in its `model`)."""

    steps: int = Field(400, ge=1, le=100_000)
    learning_rate: float = Field(1e-3, gt=0)
    sequences: int = Field(256, ge=4, le=10_000, description="random-token prompts the target continues greedily")
    prompt_tokens: int = Field(16, ge=2, le=1024)
    generated_tokens: int = Field(64, ge=4, le=4096)
    batch_size: int = Field(32, ge=1, le=4096, description="sequences per step")
    hidden_weight: float = Field(1.0, ge=0, description="weight of the hidden-state loss beside the token loss")
    log_every: int = Field(20, ge=1)
    seed: int = Field(0, ge=0)
    timeout_s: float = Field(900.0, gt=0, description="deadline of the training process")


class TinyModelSpec(Frozen):
    """A randomly initialised Llama the harness builds itself (the embedded CPU default); with `vision`, a tiny
    vision-language model around it."""

    hidden_size: int = Field(128, ge=32, le=512)
    num_layers: int = Field(2, ge=1, le=8)
    num_heads: int = Field(2, ge=1, le=16)
    intermediate_size: int = Field(256, ge=32, le=2048)
    vocab_size: int = Field(512, ge=300, le=8192)
    max_position_embeddings: int = Field(2048, ge=64, le=262_144)
    # Wider attention than hidden-size / num-heads: a model whose KV cache per token is large while its weights stay
    # tiny (the capacity probe's model: memory, not positions, bounds its context).
    head_dim: int | None = Field(None, ge=32, le=512)
    corpus_sentences: int = Field(4000, ge=100, le=200_000)
    seed: int = Field(0, ge=0)
    trained: bool = Field(False, description="serve the checkpoint of the plan's suites.training run (launcher tiny)")
    vision: TinyVisionSpec | None = None
    eagle: EagleDraftSpec | None = Field(None, description="an EAGLE draft head trained for this model")

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> TinyModelSpec:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden-size {self.hidden_size} is not divisible by num-heads {self.num_heads}")
        if self.head_dim is None and self.hidden_size // self.num_heads < 32:
            raise ValueError("head size (hidden-size / num-heads) must be at least 32 for vLLM's attention kernels")
        if self.vision is not None and self.trained:
            raise ValueError("the tiny training run trains a text model: a vision model (vision:) is served untrained")
        return self

    def digest(self) -> str:
        """A short hash of everything that changes the built files (training, of the model or of a draft head for
        it, is not building)."""
        built = self.model_dump(exclude={"trained", "eagle"})
        for key in ("head_dim", "vision"):  # defaults: the digests of models built before the keys existed stay valid
            if built[key] is None:
                del built[key]
        blob = json.dumps(built, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


class ModelSpec(Frozen):
    """Exactly one of `path` (a Hugging Face model directory) or `tiny` (built by the harness)."""

    path: str | None = None
    tiny: TinyModelSpec | None = None
    tokenizer: str | None = None

    @model_validator(mode="after")
    def _exactly_one_source(self) -> ModelSpec:
        if (self.path is None) == (self.tiny is None):
            raise ValueError("give exactly one of 'path' (a model directory) or 'tiny' (a model the harness builds)")
        return self
