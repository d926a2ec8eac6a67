"""Static serving benchmark: fixed concurrency, exact prompt and output lengths (closed loop).

One case per parallel-num x (prompt-tokens, output-tokens) pair of the plan. Each case's result (JSON, and a row
in the AscendCloud and English CSVs) is written as soon as it finishes. The assertions are about behaviour: every
request completed, the server produced exactly the lengths asked for, and the client kept up (a run whose client
fell behind is an invalid measurement, not a slow server). Speed is reported, not asserted.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from harness.bench.cases import LoadSettings, StaticCase
from harness.bench.measure import measure_static, profiled_static_window
from harness.bench.workloads import ImageWorkload, PrefixWorkload, closed_case
from harness.config.plan import Plan
from harness.load.synthetic import vision_support
from harness.load.tokens import Tokens
from harness.metrics.signals import prefix_cache_verdict
from harness.plugins.markers import not_shown
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
    plan: Plan,
    endpoint: Endpoint,
    served_tokens: Tokens,
    load: LoadSettings,
    record_case: RecordCase,
    repeats: int,
    request: pytest.FixtureRequest,
) -> None:
    """Prompts sharing a long prefix hit the server's prefix cache, and fresh prompts of the same lengths do not.

    Each repeat shares a prefix of its own (a later repeat must not profit from an earlier one's cache); the control
    is the same case without a shared prefix, so a hit rate that fresh prompts would also reach proves nothing.
    """
    spec = plan.suites.prefix
    if spec is None:
        pytest.skip("the plan has no suites.prefix workload")
    case, shared = closed_case(spec), PrefixWorkload(spec, served_tokens)
    result = measure_static(
        endpoint, served_tokens, case, load, repeats, shared, suite="serving.prefix", progress=record_case.progress
    )
    result.config["prefix_tokens"] = spec.prefix_tokens
    record_case.progress(result)  # on disk before the control is measured
    control = measure_static(endpoint, served_tokens, case, load, 1, suite="serving.prefix-control")
    hits = result.checks["server"].get("prefix_cache_hit_rate")
    verdict = prefix_cache_verdict(
        hits, control.checks["server"].get("prefix_cache_hit_rate"), spec.prefix_tokens, spec.prompt_tokens
    )
    result.checks["prefix_cache"] = verdict.as_json()
    record_case(result)  # with its verdict
    check_case(result, result.config["num_requests"])
    check_case(control, control.config["num_requests"])
    if hits is None:
        not_shown(request, "the server exports no prefix-cache counters (is prefix caching off?)")
    assert verdict.ok, verdict.message


def test_multimodal(
    plan: Plan,
    endpoint: Endpoint,
    served_tokens: Tokens,
    load: LoadSettings,
    record_case: RecordCase,
    repeats: int,
    served_model: Path,
    request: pytest.FixtureRequest,
) -> None:
    """Chat requests with a locally generated image each (not shown, with the reason, on a text-only model)."""
    spec = plan.suites.multimodal
    if spec is None:
        pytest.skip("the plan has no suites.multimodal workload")
    reason = vision_support(served_model)
    if reason is not None:
        not_shown(request, f"the plan asks for a multimodal workload, and {reason}")
    with_images = ImageWorkload(spec, served_tokens, served_model)  # counts what the server will, for the audit
    chat = dataclasses.replace(load, route="chat")
    result = measure_static(
        endpoint,
        served_tokens,
        closed_case(spec),
        chat,
        repeats,
        with_images,
        "serving.multimodal",
        record_case.progress,
    )
    result.config.update(with_images.config())
    record_case(result)
    check_case(result, result.config["num_requests"])
