"""The static suite's special workloads, from their plan sections: prompts sharing a prefix (`suites.prefix`), and
chat prompts with an image each (`suites.multimodal`) with the counts the image-token audit holds the server to.
Each is a `Workload` for harness.bench.measure: (the measurement's generator, count) -> fresh prompts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness.bench.cases import StaticCase
from harness.config.workloads import MultimodalSpec, PrefixSpec
from harness.load.samples import Sample
from harness.load.synthetic import image_samples, prefix_samples
from harness.load.tokens import Tokens
from harness.load.vision import ImagePromptCounter, PromptCount


def closed_case(spec: PrefixSpec | MultimodalSpec) -> StaticCase:
    """The closed-loop case sending at least the section's `num-prompts` at its `parallel-num`."""
    return StaticCase.covering(spec.parallel_num, spec.prompt_tokens, spec.output_tokens, spec.num_prompts)


class PrefixWorkload:
    """Prompts sharing their first `prefix-tokens` tokens; each call (each measurement) a prefix of its own, so a
    later repeat cannot profit from an earlier one's cache."""

    def __init__(self, spec: PrefixSpec, tokens: Tokens) -> None:
        self.spec, self.tokens = spec, tokens

    def __call__(self, rng: np.random.Generator, count: int) -> list[Sample]:
        spec = self.spec
        return prefix_samples(self.tokens, count, spec.prefix_tokens, spec.prompt_tokens, spec.output_tokens, rng)


class ImageWorkload:
    """Chat prompts with one locally made image each. Before a prompt is sent, the model's own processor counts
    what the server will (template, text and image tokens): each sample carries that count, and `counts` keeps
    them for the case's configuration."""

    def __init__(self, spec: MultimodalSpec, tokens: Tokens, model: Path) -> None:
        self.spec, self.tokens = spec, tokens
        self.counter = ImagePromptCounter(model)
        self.counts: list[PromptCount] = []

    def _served_len(self, prompt: str, images: tuple[str, ...]) -> int:
        self.counts.append(self.counter.count(prompt, images))
        return self.counts[-1].served

    def __call__(self, rng: np.random.Generator, count: int) -> list[Sample]:
        spec = self.spec
        return image_samples(
            self.tokens, count, spec.prompt_tokens, spec.output_tokens, spec.height, spec.width, rng, self._served_len
        )

    def config(self) -> dict[str, Any]:
        """The image size and what the processor counted, for the case's configuration."""
        image_tokens = sorted({c.image for c in self.counts})
        return {
            "height": self.spec.height,
            "width": self.spec.width,
            "image_tokens_per_request": image_tokens[0] if len(image_tokens) == 1 else image_tokens,
            "mean_text_tokens_per_request": float(np.mean([c.text for c in self.counts])) if self.counts else None,
        }
