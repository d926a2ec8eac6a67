"""Where the harness keeps what it builds (models, engine caches) and what it writes (reports), and how names
from a plan become file names (`file_name`): a case id, task or model name never makes a sub-folder or leaves
the folder it is written in."""

from __future__ import annotations

import os
import re
from pathlib import Path

CACHE_ENV = "LLMQUAL_CACHE_DIR"


def project_root(start: Path | None = None) -> Path:
    """The llmqual checkout the current folder is in (the folder holding its pyproject.toml and `harness/`, which
    pytest takes as its rootdir), else the current folder: `llmqual` run from a sub-folder finds the same `.cache`
    and `reports` as `pytest` does."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "harness" / "plugin.py").is_file():
            return folder
    return here


def cache_root(base: Path | None = None) -> Path:
    """The project's cache folder: $LLMQUAL_CACHE_DIR, else `.cache/` under `base` (the pytest rootdir), else
    under the project root (`project_root`)."""
    configured = os.environ.get(CACHE_ENV)
    root = Path(configured) if configured else (base or project_root()) / ".cache"
    root.mkdir(parents=True, exist_ok=True)
    return root.resolve()


def reports_root() -> Path:
    """Where `llmqual` commands look for runs by default: `reports/` under the project root, as pytest writes."""
    return project_root() / "reports"


def file_name(name: str) -> str:
    """`name` as one file-name component: each run of characters other than letters, digits, `.`, `_`, `-`
    becomes `_` (`org/name` -> `org_name`, `../x` -> `.._x`), and a name of dots only is prefixed."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "_"
    return f"_{safe}" if set(safe) == {"."} else safe


def inside(folder: Path, *names: str) -> Path:
    """`folder / name / ...`, each name made a file-name component: always a path inside `folder`."""
    return folder.joinpath(*(file_name(n) for n in names))
