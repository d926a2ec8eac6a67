"""The model a plan serves: a Hugging Face folder, or the tiny Llama the harness builds itself."""

from __future__ import annotations

import hashlib
import json

from pydantic import Field, model_validator

from harness.config.base import Frozen


class TinyModelSpec(Frozen):
    """A randomly initialised Llama the harness builds itself (the embedded CPU default)."""

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

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> TinyModelSpec:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden-size {self.hidden_size} is not divisible by num-heads {self.num_heads}")
        if self.head_dim is None and self.hidden_size // self.num_heads < 32:
            raise ValueError("head size (hidden-size / num-heads) must be at least 32 for vLLM's attention kernels")
        return self

    def digest(self) -> str:
        """A short hash of everything that changes the built files (training is not building)."""
        built = self.model_dump(exclude={"trained"})
        if built["head_dim"] is None:  # the default: the digests of models built before the key existed stay valid
            del built["head_dim"]
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
