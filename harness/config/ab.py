"""The plan's `ab:` section: a reference and candidate server configurations measured in the same run.

On a shared or noisy machine a baseline recorded last week says little about today; comparing two configurations
on the same node, their measurements interleaved (reference, candidate, reference, ...), does. Each comparison is
one static case measured `pairs` times on each side, in turn, and judged by the paired gate
(harness.gates.gate.paired_gate). `expect` turns a comparison into a proof that the gate works: an A/A comparison
(`candidate: {}`) must pass, a planted slowdown must fail.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from harness.config.base import Frozen
from harness.metric_names import OUTPUT_THROUGHPUT


class ABWorkload(Frozen):
    """The static case both sides are measured with (closed loop, exact lengths, fresh prompts every time)."""

    parallel_num: int = Field(16, ge=1)
    prompt_tokens: int = Field(64, ge=2)
    output_tokens: int = Field(64, ge=1)


class ABComparison(Frozen):
    """One candidate configuration against the reference."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    candidate: dict[str, Any] = Field(
        default_factory=dict, description="server overrides (vllm serve names); {} measures the reference twice"
    )
    expect: Literal["pass", "fail"] | None = Field(
        None, description="the verdict the gate must give (a check of the gate); default: a fail fails the test"
    )
    pairs: int | None = Field(None, ge=2, le=100, description="this comparison's pairs (default: the section's)")

    @property
    def id(self) -> str:
        return self.name


class ABSpec(Frozen):
    reference: dict[str, Any] = Field(default_factory=dict, description="server overrides of the reference side")
    workload: ABWorkload = ABWorkload()
    pairs: int = Field(6, ge=2, le=100, description="measurements of each side, interleaved")
    metrics: tuple[str, ...] = Field((OUTPUT_THROUGHPUT,), min_length=1, description="the metrics gated")
    comparisons: tuple[ABComparison, ...] = Field(min_length=1)
