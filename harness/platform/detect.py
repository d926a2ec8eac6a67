"""Detecting the platforms this machine offers, with the reason when one is absent.

Detection never imports torch_npu or vLLM: it asks the tools (`npu-smi`, `nvidia-smi`) and looks for packages
with `importlib.util.find_spec`, so that `pytest -m npu` on a CPU box costs nothing and breaks nothing.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache

from harness.config.plan import PlatformName

TOOL_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class Detection:
    """Whether a platform is usable here; `reason` says what was looked for when it is not."""

    platform: PlatformName
    available: bool
    reason: str


def _tool_answers(tool: str, *args: str) -> tuple[bool, str]:
    path = shutil.which(tool)
    if path is None:
        return False, f"{tool} not found"
    try:
        done = subprocess.run([path, *args], capture_output=True, timeout=TOOL_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"{tool} {' '.join(args)} failed: {exc}"
    if done.returncode != 0:
        return False, f"{tool} {' '.join(args)} exited {done.returncode}"
    return True, done.stdout.decode("utf-8", "replace")


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def detect_npu() -> Detection:
    ok, detail = _tool_answers("npu-smi", "info")
    if ok:
        return Detection("npu", True, "npu-smi answers")
    if _has_module("torch_npu"):
        return Detection("npu", True, "torch_npu is installed")
    return Detection("npu", False, f"no Ascend NPU: {detail}, torch_npu not importable")


def detect_gpu() -> Detection:
    ok, detail = _tool_answers("nvidia-smi", "-L")
    if ok and "GPU" in detail:
        return Detection("gpu", True, "nvidia-smi lists a GPU")
    reason = detail if not ok else "nvidia-smi lists no GPU"
    return Detection("gpu", False, f"no NVIDIA GPU: {reason}")


def detect_cpu() -> Detection:
    if _has_module("vllm"):
        return Detection("cpu", True, "vLLM (CPU build) is installed")
    return Detection("cpu", False, "vLLM is not installed here: run scripts/bootstrap (installs .[cpu,eval,dev])")


_DETECTORS = {"npu": detect_npu, "gpu": detect_gpu, "cpu": detect_cpu}


@cache
def detect(platform: PlatformName) -> Detection:
    """Detection of one platform, computed once per process."""
    return _DETECTORS[platform]()
