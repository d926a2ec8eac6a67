"""Where the harness keeps what it builds (models, engine caches) and what it writes (reports)."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "LLMQUAL_CACHE_DIR"


def cache_root(base: Path | None = None) -> Path:
    """The project's cache folder: $LLMQUAL_CACHE_DIR, else `.cache/` under `base` (the pytest rootdir or cwd)."""
    configured = os.environ.get(CACHE_ENV)
    root = Path(configured) if configured else (base or Path.cwd()) / ".cache"
    root.mkdir(parents=True, exist_ok=True)
    return root.resolve()
