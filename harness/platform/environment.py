"""The environment each platform's server process needs (docs/measurement.md, "Placement", for the CPU values)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from harness.config.plan import PlatformName

DEVICE_VARIABLE: dict[PlatformName, str] = {"npu": "ASCEND_RT_VISIBLE_DEVICES", "gpu": "CUDA_VISIBLE_DEVICES"}


def device_environment(platform: PlatformName, devices: Sequence[int]) -> dict[str, str]:
    """The variable that makes exactly `devices` visible to a process on `platform` (none on the CPU, or without
    devices). Device ids are carried as numbers everywhere else; this is the one place they become text."""
    if platform not in DEVICE_VARIABLE or not devices:
        return {}
    return {DEVICE_VARIABLE[platform]: ",".join(str(d) for d in devices)}


def server_environment(
    platform: PlatformName,
    cache: Path,
    devices: Sequence[int] = (),
    overrides: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """What a vLLM server on `platform` needs on top of the harness's own environment, then `overrides`.

    Only the additions are returned, so that they can key a server configuration; the process gets them over
    os.environ. A variable the user already set (VLLM_CPU_KVCACHE_SPACE, ...) is respected.
    """
    env = {"VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "PYTHONUNBUFFERED": "1"}
    if platform == "cpu":
        env.update(
            {
                "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),
                # vLLM's own placement (the worker's threads bound, a core reserved for the rest) unless the plan
                # places the server itself (server.env, server.cpus: docs/measurement.md, "Placement").
                "VLLM_CPU_OMP_THREADS_BIND": os.environ.get("VLLM_CPU_OMP_THREADS_BIND", "auto"),
                "VLLM_CACHE_ROOT": str(cache / "vllm"),
                "TORCHINDUCTOR_CACHE_DIR": str(cache / "torchinductor"),
                "HF_HOME": str(cache / "huggingface"),
                # Nothing can be downloaded on the CPU path: fail at once instead of waiting on a hub.
                "HF_HUB_OFFLINE": "1",
                "TRANSFORMERS_OFFLINE": "1",
            }
        )
    else:
        env.update(device_environment(platform, devices))
    if overrides:
        env.update(overrides)
    return env
