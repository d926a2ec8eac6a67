"""Token audit of one run: were the lengths asked for the lengths served?

Compares, per completed request, the requested output tokens (max_tokens) with the server's
`usage.completion_tokens` and with a re-tokenised count of the text; and the requested input length with the
server's `usage.prompt_tokens`. With `ignore_eos` every request must produce exactly max_tokens: fewer means the
server did not honour it. Re-tokenised counts may differ from the server's (text re-encodes into other merges);
that is reported, not judged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from harness.client.openai import RequestRecord


@dataclass(frozen=True)
class Asked:
    """What one request asked for: its prompt's length as the harness counted it, and max_tokens."""

    input_tokens: int
    output_tokens: int
    served_input_tokens: int | None = None  # what the server will count, template and image tokens included

    @property
    def expected_input_tokens(self) -> int:
        return self.input_tokens if self.served_input_tokens is None else self.served_input_tokens


def token_audit(
    asked: Sequence[Asked],
    records: Sequence[RequestRecord],
    count_outputs: Callable[[list[str]], list[int]],
    ignore_eos: bool,
    compare_input: bool = True,
) -> dict[str, Any]:
    """Audit counts; `compare_input` is False when the server adds tokens the harness cannot count (a chat template
    on a text prompt). Where the harness knows what the server will count (`Asked.served_input_tokens`: template and
    image tokens of a multimodal prompt), that is the expected prompt length."""
    pairs = [(a, r) for a, r in zip(asked, records, strict=True) if r.ok and r.content_times]
    served = [(a, r) for a, r in pairs if r.completion_tokens is not None]
    retokenised = count_outputs([r.text for _, r in pairs])
    short = [(a, r) for a, r in served if r.completion_tokens is not None and r.completion_tokens < a.output_tokens]
    audit: dict[str, Any] = {
        "requests_audited": len(pairs),
        "requested_output_tokens": sum(a.output_tokens for a, _ in pairs),
        "server_output_tokens": sum(r.completion_tokens or 0 for _, r in served),
        # the fewest and most tokens one request got back (the scripts' per-request check, in two numbers)
        "returned_min": min((r.completion_tokens or 0 for _, r in served), default=None),
        "returned_max": max((r.completion_tokens or 0 for _, r in served), default=None),
        "retokenised_output_tokens": sum(retokenised),
        "output_length_mismatches": sum(r.completion_tokens != a.output_tokens for a, r in served),
        "over_length_outputs": sum((r.completion_tokens or 0) > a.output_tokens for a, r in served),
        "retokenised_differs": sum(n != r.completion_tokens for n, (_, r) in zip(retokenised, pairs, strict=True)),
        "requested_input_tokens": sum(a.input_tokens for a, _ in pairs),
        "server_input_tokens": sum(r.prompt_tokens or 0 for _, r in pairs),
        "expected_input_tokens": sum(a.expected_input_tokens for a, _ in pairs),
        "input_length_mismatches": (
            sum(r.prompt_tokens != a.expected_input_tokens for a, r in pairs) if compare_input else None
        ),
        "ignore_eos": ignore_eos,
        "ignore_eos_not_honoured": sum(r.finish_reason == "stop" for _, r in short) if ignore_eos else None,
    }
    problems = []
    if ignore_eos and audit["output_length_mismatches"]:
        problems.append(f"{audit['output_length_mismatches']} requests did not produce exactly max_tokens")
    if audit["over_length_outputs"]:
        problems.append(f"{audit['over_length_outputs']} requests produced more than max_tokens")
    if compare_input and audit["input_length_mismatches"]:
        problems.append(f"{audit['input_length_mismatches']} prompts were not the requested length")
    audit["problems"] = problems
    return audit
