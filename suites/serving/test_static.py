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
from harness.bench.execute import repeated, run_static
from harness.config.plan import Plan
from harness.load.synthetic import image_samples, prefix_samples, vision_support
from harness.load.tokens import Tokens
from harness.model.resolve import resolve_model
from harness.server.endpoint import Endpoint
from harness.session import RecordCase
from suites.serving.checks import check_case

pytestmark = pytest.mark.serving


def test_static(
    static_case: StaticCase,
    endpoint: Endpoint,
    served_tokens: Tokens,
    load: LoadSettings,
    record_case: RecordCase,
    repeats: int,
) -> None:
    result = repeated(lambda: run_static(endpoint, served_tokens, static_case, load), repeats)
    record_case(result, "static")
    check_case(result, static_case.num_requests)
    assert result.metrics["total_output_tokens"] == static_case.num_requests * static_case.output_tokens


def test_prefix_caching(
    plan: Plan, endpoint: Endpoint, served_tokens: Tokens, load: LoadSettings, record_case: RecordCase, repeats: int
) -> None:
    """Prompts sharing a long prefix: the server's prefix cache must be hit (when it exports the counters)."""
    spec = plan.suites.prefix
    if spec is None:
        pytest.skip("the plan has no suites.prefix workload")
    rng = np.random.default_rng(load.seed)
    samples = prefix_samples(
        served_tokens, spec.num_prompts, spec.prefix_tokens, spec.prompt_tokens, spec.output_tokens, rng
    )
    case = StaticCase(spec.parallel_num, spec.prompt_tokens, spec.output_tokens, 1)
    result = repeated(lambda: run_static(endpoint, served_tokens, case, load, samples, suite="serving.prefix"), repeats)
    result.config["prefix_tokens"] = spec.prefix_tokens
    record_case(result)
    check_case(result, spec.num_prompts)
    hit_rate = result.checks["server"].get("prefix_cache_hit_rate")
    if hit_rate is None:
        pytest.skip("the server exports no prefix-cache counters (is prefix caching off?)")
    # Every prompt after the first shares prefix-tokens; whole cached blocks of it must be hit.
    assert hit_rate > 0, f"prefix-cache hit rate {hit_rate} on prompts sharing {spec.prefix_tokens} tokens"


def test_multimodal(
    plan: Plan,
    endpoint: Endpoint,
    served_tokens: Tokens,
    load: LoadSettings,
    record_case: RecordCase,
    repeats: int,
    model_cache: Path,
) -> None:
    """Chat requests with a locally generated image each (skips with the reason on a text-only model)."""
    spec = plan.suites.multimodal
    if spec is None:
        pytest.skip("the plan has no suites.multimodal workload")
    reason = vision_support(resolve_model(plan, model_cache))
    if reason is not None:
        pytest.skip(f"multimodal workload skipped: {reason}")
    rng = np.random.default_rng(load.seed)
    samples = image_samples(
        served_tokens, spec.num_prompts, spec.prompt_tokens, spec.output_tokens, spec.height, spec.width, rng
    )
    case = StaticCase(spec.parallel_num, spec.prompt_tokens, spec.output_tokens, 1)
    chat = dataclasses.replace(load, route="chat")
    result = repeated(
        lambda: run_static(endpoint, served_tokens, case, chat, samples, suite="serving.multimodal"), repeats
    )
    result.config.update(height=spec.height, width=spec.width)
    record_case(result)
    check_case(result, spec.num_prompts)
