"""Building a model folder once into the cache: concurrent builders (pytest-xdist workers, two runs) serialise on a
file lock, the folder is built under a temporary name and appears atomically, and a half-built folder left by a
killed run is replaced."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from harness.runtime.locks import file_lock

BUILD_LOCK_TIMEOUT_S = 600.0


def build_once(target: Path, marker: str, build: Callable[[Path], None]) -> Path:
    """`target`, built by `build(staging_folder)` first unless it already holds `marker` (which `build` writes
    last)."""
    if (target / marker).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(target.with_suffix(".lock"), BUILD_LOCK_TIMEOUT_S):
        if (target / marker).is_file():
            return target
        staging = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
        try:
            build(staging)
            if target.exists():  # a half-built folder from a killed run
                shutil.rmtree(target)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target
