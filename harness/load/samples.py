"""One request of a workload, and the OpenAI payload it becomes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.client.openai import Route


@dataclass(frozen=True)
class Sample:
    """A prompt with its length (tokens, counted as the server counts them) and the output length to ask for.

    `images` are data URLs sent with a chat prompt (multimodal workloads).
    """

    prompt: str
    prompt_len: int
    output_len: int
    images: tuple[str, ...] = ()
    # The prompt tokens the server will count (chat template and image tokens included), when the harness knows them
    # (harness.load.vision); else the audit can compare prompt lengths only on the completions route.
    served_prompt_len: int | None = None
    # The prompt as token ids (trace replay: equal hash ids must give identical blocks of tokens, which text cannot
    # promise across block boundaries); sent as the completions API's list-of-ids prompt, `prompt` left empty.
    prompt_ids: tuple[int, ...] | None = None


def payload(sample: Sample, route: Route, ignore_eos: bool, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The streamed request body for `sample` (the client fills in the model)."""
    body: dict[str, Any] = {"max_tokens": sample.output_len, "stream": True, "temperature": 0.0}
    if ignore_eos:
        body["ignore_eos"] = True
    if route == "completions":
        if sample.images:
            raise ValueError("images need the chat endpoint: use endpoint-type chat")
        body["prompt"] = list(sample.prompt_ids) if sample.prompt_ids is not None else sample.prompt
    else:
        if sample.prompt_ids is not None:
            raise ValueError("token-id prompts need the completions endpoint: use endpoint-type completions")
        content: str | list[dict[str, Any]] = sample.prompt
        if sample.images:
            content = [{"type": "text", "text": sample.prompt}] + [
                {"type": "image_url", "image_url": {"url": url}} for url in sample.images
            ]
        body["messages"] = [{"role": "user", "content": content}]
    return {**body, **(extra or {})}
