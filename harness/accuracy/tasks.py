"""lm-eval task folders and task names, checked before anything runs.

The project's offline tasks live in `fixtures/lm_eval_tasks/` with data paths relative to their YAML. lm-eval
hands `data_files` to `datasets`, which resolves relative paths against the working directory, so the harness
materialises a copy of the folder whose YAMLs carry absolute paths; the same copy is what the `lm_eval` command
line gets, so both read identical tasks.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from harness.config.errors import did_you_mean
from harness.errors import HarnessError
from harness.runtime.locks import file_lock


class TaskError(HarnessError):
    """An lm-eval task cannot be used (unknown name, unreadable task folder)."""


def _absolute_data_files(config: dict[str, Any], base: Path) -> dict[str, Any]:
    files = (config.get("dataset_kwargs") or {}).get("data_files")
    if isinstance(files, dict):
        config["dataset_kwargs"]["data_files"] = {
            split: str((base / path).resolve()) if not Path(path).is_absolute() else path
            for split, path in files.items()
        }
    elif isinstance(files, str) and not Path(files).is_absolute():
        config["dataset_kwargs"]["data_files"] = str((base / files).resolve())
    return config


MATERIALISE_LOCK_TIMEOUT_S = 120.0


def materialise(source: Path, cache: Path) -> Path:
    """A copy of the task folder `source` with absolute data paths, under `cache` (reused while unchanged)."""
    yamls = sorted(source.glob("*.yaml"))
    if not yamls:
        raise TaskError(f"{source}: no lm-eval task YAML files (fix: point include-path at a task folder)")
    digest = hashlib.sha256()
    for path in sorted(source.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(source)).encode() + path.read_bytes())
    target = cache / "lm_eval_tasks" / digest.hexdigest()[:16]
    target.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(target.with_suffix(".lock"), MATERIALISE_LOCK_TIMEOUT_S):  # pytest-xdist workers at once
        if not target.is_dir():
            _write_tasks(yamls, target)
    return target


def _write_tasks(yamls: list[Path], target: Path) -> None:
    staging = target.with_name(target.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for path in yamls:
        try:
            config = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise TaskError(f"{path}: not valid YAML: {exc}") from exc
        if isinstance(config, dict):
            config = _absolute_data_files(config, path.parent)
        (staging / path.name).write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), "utf-8")
    staging.rename(target)


def known_tasks(include_path: Path | None, defaults: bool = True) -> list[str]:
    """Every task and group name lm-eval knows, with the include folder added (only that folder: `defaults`
    False, which takes milliseconds instead of indexing lm-eval's thousands of tasks)."""
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(include_path) if include_path else None, include_defaults=defaults)
    return list(manager.all_tasks)


def check_tasks(names: Iterable[str], known: Iterable[str], source: str) -> None:
    """Raise TaskError for the first unknown name, listing close matches."""
    available = set(known)
    for name in names:
        if name not in available:
            hint = did_you_mean(name, available, n=5, otherwise="no close match")
            raise TaskError(
                f"{source}: unknown lm-eval task {name!r}: {hint} (fix: name a task from `lm_eval ls tasks` or "
                "from the include-path folder)"
            )
