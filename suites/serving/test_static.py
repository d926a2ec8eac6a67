"""Static serving benchmark: fixed concurrency, exact prompt and output lengths (closed loop).

One case per parallel-num x (prompt-tokens, output-tokens) pair of the plan. Each case's result (JSON, and a row
in the AscendCloud and English CSVs) is written as soon as it finishes. The assertions are about behaviour: every
request completed, the server produced exactly the lengths asked for, and the client kept up (a run whose client
fell behind is an invalid measurement, not a slow server). Speed is reported, not asserted.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from harness.bench.cases import LoadSettings, StaticCase
from harness.bench.measure import measure_static, profiled_static_window
from harness.config.plan import Plan
from harness.load.samples import Sample
from harness.load.synthetic import image_samples, prefix_samples, vision_support
from harness.load.tokens import Tokens
from harness.load.vision import ImagePromptCounter, PromptCount
from harness.metrics.signals import prefix_cache_verdict
from harness.plugins.recording import RecordCase
from harness.profile.fixtures import Profiler
from harness.server.endpoint import Endpoint
from suites.serving.checks import check_case

pytestmark = pytest.mark.serving


def test_static(
    static_case: StaticCase,
    endpoint: Endpoint,
    served_tokens: Tokens,
    load: LoadSettings,
    record_case: RecordCase,
    repeats: int,
    profiler: Profiler,
) -> None:
    result = measure_static(endpoint, served_tokens, static_case, load, repeats, progress=record_case.progress)
    record_case(result, "static")
    profile = profiler(
        static_case.id, endpoint, lambda: profiled_static_window(endpoint, served_tokens, static_case, load, result)
    )
    if profile is not None:
        record_case(profile)
    sent = result.config["num_requests"]
    check_case(result, sent)
    assert result.metrics["total_output_tokens"] == sent * static_case.output_tokens


def test_prefix_caching(
    plan: Plan, endpoint: Endpoint, served_tokens: Tokens, load: LoadSettings, record_case: RecordCase, repeats: int
) -> None:
    """Prompts sharing a long prefix hit the server's prefix cache, and fresh prompts of the same lengths do not.

    Each repeat shares a prefix of its own (a later repeat must not profit from an earlier one's cache); the control
    is the same case without a shared prefix, so a hit rate that fresh prompts would also reach proves nothing.
    """
    spec = plan.suites.prefix
    if spec is None:
        pytest.skip("the plan has no suites.prefix workload")
    case = StaticCase(
        spec.parallel_num, spec.prompt_tokens, spec.output_tokens, -(-spec.num_prompts // spec.parallel_num)
    )

    def shared(rng: np.random.Generator, count: int) -> list[Sample]:
        return prefix_samples(served_tokens, count, spec.prefix_tokens, spec.prompt_tokens, spec.output_tokens, rng)

    result = measure_static(
        endpoint, served_tokens, case, load, repeats, shared, suite="serving.prefix", progress=record_case.progress
    )
    result.config["prefix_tokens"] = spec.prefix_tokens
    record_case(result)
    check_case(result, result.config["num_requests"])
    control = measure_static(endpoint, served_tokens, case, load, 1, suite="serving.prefix-control")
    check_case(control, control.config["num_requests"])
    hits = result.checks["server"].get("prefix_cache_hit_rate")
    if hits is None:
        pytest.skip("the server exports no prefix-cache counters (is prefix caching off?)")
    ok, message = prefix_cache_verdict(
        hits, control.checks["server"].get("prefix_cache_hit_rate"), spec.prefix_tokens, spec.prompt_tokens
    )
    result.checks["prefix_cache"] = {"ok": ok, "message": message}
    assert ok, message


def test_multimodal(
    plan: Plan,
    endpoint: Endpoint,
    served_tokens: Tokens,
    load: LoadSettings,
    record_case: RecordCase,
    repeats: int,
    served_model: Path,
) -> None:
    """Chat requests with a locally generated image each (skips with the reason on a text-only model)."""
    spec = plan.suites.multimodal
    if spec is None:
        pytest.skip("the plan has no suites.multimodal workload")
    reason = vision_support(served_model)
    if reason is not None:
        pytest.skip(f"multimodal workload skipped: {reason}")
    case = StaticCase(
        spec.parallel_num, spec.prompt_tokens, spec.output_tokens, -(-spec.num_prompts // spec.parallel_num)
    )

    # The image-token audit: what the server counts for each prompt, from the model's own processor.
    counter = ImagePromptCounter(served_model)
    counts: list[PromptCount] = []

    def served_len(prompt: str, images: tuple[str, ...]) -> int:
        counts.append(counter.count(prompt, images))
        return counts[-1].served

    def with_images(rng: np.random.Generator, count: int) -> list[Sample]:
        return image_samples(
            served_tokens, count, spec.prompt_tokens, spec.output_tokens, spec.height, spec.width, rng, served_len
        )

    chat = dataclasses.replace(load, route="chat")
    result = measure_static(
        endpoint, served_tokens, case, chat, repeats, with_images, "serving.multimodal", record_case.progress
    )
    image_tokens = sorted({c.image for c in counts})
    result.config.update(
        height=spec.height,
        width=spec.width,
        image_tokens_per_request=image_tokens[0] if len(image_tokens) == 1 else image_tokens,
        mean_text_tokens_per_request=float(np.mean([c.text for c in counts])),
    )
    record_case(result)
    check_case(result, result.config["num_requests"])
