"""Where the harness keeps what it builds (models, engine caches) and what it writes (reports), and how names
from a plan become file names (`file_name`): a case id, task or model name never makes a sub-folder or leaves
the folder it is written in."""

from __future__ import annotations

import os
import re
from pathlib import Path

CACHE_ENV = "LLMQUAL_CACHE_DIR"


def cache_root(base: Path | None = None) -> Path:
    """The project's cache folder: $LLMQUAL_CACHE_DIR, else `.cache/` under `base` (the pytest rootdir or cwd)."""
    configured = os.environ.get(CACHE_ENV)
    root = Path(configured) if configured else (base or Path.cwd()) / ".cache"
    root.mkdir(parents=True, exist_ok=True)
    return root.resolve()


def file_name(name: str) -> str:
    """`name` as one file-name component: each run of characters other than letters, digits, `.`, `_`, `-`
    becomes `_` (`org/name` -> `org_name`, `../x` -> `.._x`), and a name of dots only is prefixed."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "_"
    return f"_{safe}" if set(safe) == {"."} else safe


def inside(folder: Path, *names: str) -> Path:
    """`folder / name / ...`, each name made a file-name component: always a path inside `folder`."""
    return folder.joinpath(*(file_name(n) for n in names))
