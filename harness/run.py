"""One qualification run's output folder: results appended as they are produced, and a summary at the end.

Layout: `<reports>/<run-id>/` holding `results.jsonl` (one line per test phase, written as it finishes),
`junit.xml`, `run.json` (summary + environment fingerprint) and `logs/` (server logs). `<reports>/latest` points
at the newest run.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.results.case import write_json
from harness.secrets import redact

RESULT_SCHEMA = "llmqual.result/1"


def new_run_id(clock: float | None = None) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(clock))
    return f"{stamp}-{os.getpid()}"


@dataclass
class Run:
    """Where a run writes; every write is immediate so an interrupted run keeps what it measured."""

    directory: Path
    records: list[dict[str, Any]] = field(default_factory=list)
    write_error: str | None = None  # the first failed append to results.jsonl (disk full, folder gone)
    previous_latest: Path | None = None  # what `latest` named before this run took it

    @classmethod
    def create(cls, reports_dir: Path, run_id: str) -> Run:
        """The run folder, made now; an unwritable reports folder is a HarnessError naming it and the fix."""
        directory = reports_dir / run_id
        try:
            (directory / "logs").mkdir(parents=True, exist_ok=True)
            (directory / "results.jsonl").touch()
        except OSError as exc:
            raise HarnessError(
                f"cannot write the run folder {directory} ({exc.strerror or exc}); make {reports_dir} writable or "
                "pass another folder with --reports-dir"
            ) from exc
        latest = reports_dir / "latest"
        previous = None
        try:
            if latest.is_symlink():
                previous = latest.readlink()
            if latest.is_symlink() or latest.exists():
                latest.unlink()
            latest.symlink_to(run_id, target_is_directory=True)
        except OSError:
            pass  # a filesystem without symlinks still gets the run folder
        return cls(directory, previous_latest=previous)

    def give_back_latest(self) -> Path | None:
        """Point `latest` back at the run it named before this one (a run that ran nothing must not replace the
        last run that did); the run it now names, or None when there was none."""
        latest = self.directory.parent / "latest"
        if self.previous_latest is None or not (self.directory.parent / self.previous_latest).is_dir():
            return None
        try:
            latest.unlink(missing_ok=True)
            latest.symlink_to(self.previous_latest, target_is_directory=True)
        except OSError:
            return None
        return self.directory.parent / self.previous_latest

    @property
    def log_dir(self) -> Path:
        return self.directory / "logs"

    @property
    def junit_path(self) -> Path:
        return self.directory / "junit.xml"

    def record(self, entry: dict[str, Any]) -> None:
        """Append one result line and flush it to disk at once. A failed write (disk full) does not stop the run:
        the line stays in memory for the summary and the first error is kept in `write_error`."""
        line = {"schema": RESULT_SCHEMA, **entry}
        self.records.append(line)
        try:
            with (self.directory / "results.jsonl").open("a", encoding="utf-8") as f:
                f.write(redact(json.dumps(line, sort_keys=True)) + "\n")
        except OSError as exc:
            self.write_error = self.write_error or f"{self.directory / 'results.jsonl'}: {exc.strerror or exc}"

    def write_summary(self, summary: dict[str, Any]) -> Path:
        """Write run.json atomically (a reader never sees half of it)."""
        return write_json(self.directory / "run.json", summary)
