"""The markers of llmqual's tests (a platform, a suite family, or a property of the test), and the outcomes a test
can end with beyond pytest's own.

Two kinds of test that did not run are told apart, because a release report must not count either as shown:

- a test the plan does not ask for (no such section, no `--comfyui-url`, another platform) is **skipped**: it is
  listed with its reason and never counted as passed;
- a test the plan asks for that cannot show its check here (prefix-cache counters the server does not export, a
  text-only model under a multimodal workload, Docker missing for a container plan) ends with `not_shown`. Its suite
  reads NOT SHOWN, and the run cannot pass.

A test that writes no case document (skipped, failed early) counts under its module's suite. One whose module
writes several suites names its own with `@pytest.mark.suite("diffusion.comfyui")`.
"""

from __future__ import annotations

from typing import NoReturn

import pytest

from harness.report.summary import TEST_NOT_SHOWN

MARKERS = {
    "npu": "runs on Ascend NPUs (skipped with the reason when none is found)",
    "gpu": "runs on NVIDIA GPUs (skipped with the reason when none is found)",
    "cpu": "runs on the CPU with vLLM's CPU build: the embedded default",
    "smoke": "serving smoke checks: the server answers the OpenAI API correctly",
    "serving": "serving performance suites (static and dynamic benchmarks)",
    "accuracy": "accuracy suites (lm-eval through the served model)",
    "training": "training convergence suites",
    "preflight": "checks of a node before a run",
    "integration": "the harness's own tests that start real engines (slow)",
    "disaggregated": "prefill/decode deployments: KV really transferred, answers as a single instance's",
    "ab": "A/B comparisons of server configurations measured in the same run (the plan's ab: section)",
    "capacity": "capacity questions answered by measurement: longest context per card count, highest rate within SLOs",
    "quant": "accuracy of quantised server configurations (starts extra servers; runs last)",
    "diffusion": "text-to-image latency per image and images/s (diffusers' pipeline, or a ComfyUI server)",
    "platforms": "platforms(*names): only these platform variants exist (e.g. preflight: npu)",
    "suite": "suite(name): the suite this test counts under when it writes no case (its module writes several)",
}

_NOT_SHOWN_PROPERTY = "llmqual.not_shown"
_SUITE_PROPERTY = "llmqual.suite"


def not_shown(request: pytest.FixtureRequest, reason: str) -> NoReturn:
    """End a test the plan asks for whose check cannot be shown here. pytest reports a skip with the reason; the
    run records the outcome `not shown`, and the test's suite reads NOT SHOWN (never PASS, never SKIPPED).
    `request` must be the test's own (a function-scoped fixture's or the test's)."""
    request.node.user_properties.append((_NOT_SHOWN_PROPERTY, reason))
    pytest.skip(f"not shown: {reason}")


def declare_suites(items: list[pytest.Item]) -> None:
    """Carry each `suite` marker into the test's reports, where the run's recorder reads it."""
    for item in items:
        marker = item.get_closest_marker("suite")
        if marker is not None:
            item.user_properties.append((_SUITE_PROPERTY, str(marker.args[0])))


def declared_suite(report: pytest.TestReport) -> str | None:
    return next((str(value) for key, value in report.user_properties if key == _SUITE_PROPERTY), None)


def outcome(report: pytest.TestReport) -> str:
    """pytest's outcome, with an expected failure told apart from a skip (pytest reports both as skipped): an
    xfail is a check that did not show what it checks, never a pass nor a test that did not apply. A skip through
    `not_shown` is `not shown`."""
    if hasattr(report, "wasxfail"):
        return "xfailed" if report.skipped else "xpassed"
    if report.skipped and any(key == _NOT_SHOWN_PROPERTY for key, _ in report.user_properties):
        return TEST_NOT_SHOWN
    return str(report.outcome)
