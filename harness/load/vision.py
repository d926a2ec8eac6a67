"""What a vision-language model's server counts for a chat prompt with images, known before the request is sent.

The model's own Hugging Face processor (the one vLLM's multimodal processor calls) renders the request as vLLM's
chat endpoint renders it: the chat template over the message's parts in the order sent (text, then images), then
the processor expands each image placeholder into the image's tokens (tiles, markers, the global image) and
tokenises without special tokens added (vLLM's chat does not add them; the template carries its own). The audit
then holds every served `prompt_tokens` to that count exactly, and the case reports how many of them the image was.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError


@dataclass(frozen=True)
class PromptCount:
    served: int  # what the server will count: template, text and image tokens
    text: int  # the same message without its images: template and text tokens

    @property
    def image(self) -> int:
        return self.served - self.text


def _image(data_url: str) -> Any:
    from PIL import Image

    encoded = data_url.split(",", 1)[1]
    return Image.open(io.BytesIO(base64.b64decode(encoded))).convert("RGB")


class ImagePromptCounter:
    """Counts with the processor in `model_dir` (loaded once)."""

    def __init__(self, model_dir: Path) -> None:
        from transformers import AutoProcessor

        try:
            self.processor = AutoProcessor.from_pretrained(model_dir)  # type: ignore[no-untyped-call]
        except (OSError, ValueError) as exc:
            raise HarnessError(f"cannot load the image processor of {model_dir} to audit image tokens: {exc}") from exc

    def _render(self, parts: list[dict[str, Any]]) -> str:
        text: str = self.processor.apply_chat_template(
            [{"role": "user", "content": parts}], add_generation_prompt=True, tokenize=False
        )
        return text

    def count(self, prompt: str, images: tuple[str, ...]) -> PromptCount:
        """The counts for a user message of `prompt` followed by `images` (data URLs), as the harness sends it."""
        text_part = [{"type": "text", "text": prompt}]
        rendered = self._render(text_part + [{"type": "image"} for _ in images])
        served = self.processor(text=rendered, images=[_image(url) for url in images], add_special_tokens=False)
        text_only = self.processor.tokenizer(self._render(text_part), add_special_tokens=False)
        return PromptCount(len(served["input_ids"][0]), len(text_only["input_ids"]))
