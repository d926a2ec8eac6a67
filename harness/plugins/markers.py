"""The markers of llmqual's tests: a platform, a suite family, or a property of the test."""

from __future__ import annotations

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
}
