"""The run index: an SQLite file under `reports/` with every run and every case's key metrics, for history and
trends. Each write is its own transaction, so an interrupted run keeps what it recorded; WAL mode and a busy
timeout let pytest-xdist workers write at once.

Tables:
    runs(run_id, plan, platform, started, finished, status, directory, environment)
    cases(run_id, suite, case_id, valid, outcome, path, metrics)       -- outcome: the gate verdict, or NULL
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INDEX_NAME = "index.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, plan TEXT, platform TEXT, started REAL, finished REAL, status TEXT,
    directory TEXT, environment TEXT
);
CREATE TABLE IF NOT EXISTS cases (
    run_id TEXT, suite TEXT, case_id TEXT, valid INTEGER, outcome TEXT, path TEXT, metrics TEXT,
    PRIMARY KEY (run_id, suite, case_id)
);
CREATE INDEX IF NOT EXISTS cases_by_case ON cases (suite, case_id);
"""


@dataclass(frozen=True)
class TrendPoint:
    run_id: str
    started: float
    value: float | None


class RunIndex:
    """The index at `<reports>/index.sqlite`; each method opens, writes and closes (no connection is kept)."""

    def __init__(self, reports_dir: Path) -> None:
        self.path = reports_dir / INDEX_NAME

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=30.0)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)
            with db:  # one transaction, committed on success
                yield db
        finally:
            db.close()

    def start_run(self, run_id: str, directory: Path, plan: str | None, platform: str | None) -> None:
        with self._db() as db:
            db.execute(
                "INSERT OR REPLACE INTO runs (run_id, plan, platform, started, status, directory) VALUES (?,?,?,?,?,?)",
                (run_id, plan, platform, time.time(), "running", str(directory)),
            )

    def finish_run(
        self, run_id: str, status: str, environment: dict[str, Any], plan: str | None, platform: str | None
    ) -> None:
        with self._db() as db:
            db.execute(
                "UPDATE runs SET finished = ?, status = ?, environment = ?, plan = COALESCE(?, plan), "
                "platform = COALESCE(?, platform) WHERE run_id = ?",
                (time.time(), status, json.dumps(environment, sort_keys=True), plan, platform, run_id),
            )

    def record_case(self, run_id: str, document: dict[str, Any], path: Path, outcome: str | None) -> None:
        metrics = {k: v for k, v in document.get("metrics", {}).items() if isinstance(v, int | float | None)}
        with self._db() as db:
            db.execute(
                "INSERT OR REPLACE INTO cases VALUES (?,?,?,?,?,?,?)",
                (
                    run_id,
                    document["suite"],
                    document["case_id"],
                    int(bool(document.get("valid", True))),
                    outcome,
                    str(path),
                    json.dumps(metrics, sort_keys=True),
                ),
            )

    def runs(self, plan: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        """The newest runs (of `plan`), newest first."""
        query = "SELECT run_id, plan, platform, started, finished, status, directory FROM runs"
        args: tuple[Any, ...] = ()
        if plan is not None:
            query, args = query + " WHERE plan = ?", (plan,)
        with self._db() as db:
            rows = db.execute(query + " ORDER BY started DESC LIMIT ?", (*args, limit)).fetchall()
        keys = ("run_id", "plan", "platform", "started", "finished", "status", "directory")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def trend(self, suite: str, case_id: str, metric: str, plan: str | None, last: int) -> list[TrendPoint]:
        """`metric` of one case over the last `last` runs of `plan` that measured it, oldest first."""
        query = (
            "SELECT r.run_id, r.started, c.metrics FROM cases c JOIN runs r ON r.run_id = c.run_id "
            "WHERE c.suite = ? AND c.case_id = ?"
            + (" AND r.plan = ?" if plan else "")
            + " ORDER BY r.started DESC LIMIT ?"
        )
        args = (suite, case_id, *((plan,) if plan else ()), last)
        with self._db() as db:
            rows = db.execute(query, args).fetchall()
        return [
            TrendPoint(run_id, started, json.loads(metrics).get(metric)) for run_id, started, metrics in reversed(rows)
        ]
