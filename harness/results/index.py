"""The run index: an SQLite file under `reports/` with every run and every case's key metrics, for history and
trends. Each write is its own transaction, so an interrupted run keeps what it recorded; WAL mode and a busy
timeout let pytest-xdist workers write at once.

Tables:
    runs(run_id, plan, platform, started, finished, status, directory, environment, host, pid)
    cases(run_id, suite, case_id, valid, outcome, path, metrics)       -- outcome: the gate verdict, or NULL

A run killed outright (`kill -9`, a lost node) never writes its end. Whenever the index is opened, a run of this
host still "running" whose process is gone is **reconciled**: marked "interrupted", finished at the time of its
last file, and every case document in its folder that the index lacks is added (a case written just before the
kill). Indexes from before `host` and `pid` existed get the columns added.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.gates.drift import Drift, measured_drift
from harness.gates.verdict import Verdict, overall
from harness.results.case import case_files

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
ADDED_COLUMNS = {"host": "TEXT", "pid": "INTEGER"}  # runs columns newer than the first schema


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


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
            have = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
            for name, kind in ADDED_COLUMNS.items():
                if name not in have:
                    db.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")
            with db:  # one transaction, committed on success
                yield db
        finally:
            db.close()

    def start_run(
        self, run_id: str, directory: Path, plan: str | None, platform: str | None, pid: int | None = None
    ) -> None:
        self.reconcile()
        with self._db() as db:
            db.execute(
                "INSERT OR REPLACE INTO runs (run_id, plan, platform, started, status, directory, host, pid) "
                "VALUES (?,?,?,?,?,?,?,?)",
                (
                    run_id,
                    plan,
                    platform,
                    time.time(),
                    "running",
                    str(directory),
                    socket.gethostname(),
                    os.getpid() if pid is None else pid,
                ),
            )

    def reconcile(self) -> list[str]:
        """Mark this host's runs whose process died while "running" as interrupted, adding the cases their
        folders hold that the index lacks; returns their ids."""
        with self._db() as db:
            rows = db.execute(
                "SELECT run_id, directory, pid FROM runs WHERE status = 'running' AND host = ?",
                (socket.gethostname(),),
            ).fetchall()
        dead = [(run_id, Path(directory)) for run_id, directory, pid in rows if pid and not process_alive(pid)]
        for run_id, directory in dead:
            with self._db() as db:
                known = {tuple(r) for r in db.execute("SELECT suite, case_id FROM cases WHERE run_id = ?", (run_id,))}
            for path, document in case_files(directory) if directory.is_dir() else ():
                if (document.get("suite"), document.get("case_id")) not in known:
                    self.record_case(run_id, document, path, _verdict(document))
            with self._db() as db:
                db.execute(
                    "UPDATE runs SET status = 'interrupted', finished = ? WHERE run_id = ? AND status = 'running'",
                    (_last_write(directory) or time.time(), run_id),
                )
        return [run_id for run_id, _ in dead]

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

    def runs(self, plan: str | None = None, limit: int = 20, host: str | None = None) -> list[dict[str, Any]]:
        """The newest runs (of `plan`, on `host`), newest first (interrupted runs reconciled first)."""
        self.reconcile()
        query = "SELECT run_id, plan, platform, started, finished, status, directory FROM runs"
        where = [(f, v) for f, v in (("plan", plan), ("host", host)) if v is not None]
        args: tuple[Any, ...] = tuple(v for _, v in where)
        if where:
            query += " WHERE " + " AND ".join(f"{f} = ?" for f, _ in where)
        with self._db() as db:
            rows = db.execute(query + " ORDER BY started DESC LIMIT ?", (*args, limit)).fetchall()
        keys = ("run_id", "plan", "platform", "started", "finished", "status", "directory")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def measured(self, plan: str, metric: str, last: int, host: str | None = None) -> list[Measured]:
        """`metric` of every case of the last `last` finished runs of `plan` (passed or failed; not interrupted
        runs, whose cases may be cut short; only `host`'s when given), oldest run first."""
        runs = [r for r in self.runs(plan, 10 * last, host) if r["status"] in ("passed", "failed")][:last]
        if not runs:
            return []
        marks = ",".join("?" for _ in runs)
        query = (
            "SELECT r.run_id, r.started, c.suite, c.case_id, c.valid, c.metrics FROM cases c "
            f"JOIN runs r ON r.run_id = c.run_id WHERE r.run_id IN ({marks}) ORDER BY r.started, c.suite, c.case_id"
        )
        with self._db() as db:
            rows = db.execute(query, [r["run_id"] for r in runs]).fetchall()
        found = []
        for run_id, started, suite, case_id, valid, text in rows:
            metrics = json.loads(text)
            if metric in metrics:
                found.append(Measured(run_id, started, suite, case_id, bool(valid), metrics[metric]))
        return found

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


@dataclass(frozen=True)
class Measured:
    """One case's value of a metric in one run (for `llmqual trends`)."""

    run_id: str
    started: float
    suite: str
    case_id: str
    valid: bool
    value: float | None


def _verdict(document: dict[str, Any]) -> str | None:
    """The overall verdict of the gates a case document records."""
    gates = [g for g in document.get("gates", []) if isinstance(g, dict) and g.get("outcome")]
    return overall([Verdict(str(g.get("metric")), g["outcome"], "") for g in gates])


def _last_write(directory: Path) -> float | None:
    """When anything in a run folder was last written."""
    times = [p.stat().st_mtime for p in directory.rglob("*") if p.is_file()] if directory.is_dir() else []
    return max(times, default=None)


def drifts_of(index: RunIndex, plan: str, metrics: Iterable[str], last: int = 20) -> dict[str, Drift]:
    """Each metric's drift measured over `plan`'s last finished runs on this host (harness.gates.drift); metrics
    with too few runs are left out (the plan's constant applies)."""
    found = {}
    for metric in metrics:
        per_case: dict[str, list[float]] = {}
        for m in index.measured(plan, metric, last, socket.gethostname()):
            if m.valid and isinstance(m.value, int | float):
                per_case.setdefault(f"{m.suite}/{m.case_id}", []).append(float(m.value))
        drift = measured_drift(metric, per_case)
        if drift is not None:
            found[metric] = drift
    return found
