"""The capacity table in the form of the guides' appendix (model, cards, longest max-model-len in K), as CSV and JSON.

`capacity.csv` has one row per probe (card count x memory setting); `capacity.json` adds every attempt. Both are
rewritten after each probe, so the table on disk always holds every probe finished so far.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CSV_NAME, JSON_NAME = "capacity.csv", "capacity.json"
COLUMNS = (
    "model",
    "cards",
    "memory",
    "max_model_len_k",
    "max_model_len",
    "first_failed",
    "refused_by_engine",
    "engine_estimate",
    "starts",
    "seconds",
    "complete",
    "note",
)


@dataclass(frozen=True)
class ProbeRow:
    """One probe's answer: the longest length that served and the shortest above it that did not."""

    model: str
    cards: int
    memory: str
    max_model_len: int | None
    first_failed: int | None
    failed_because: str
    refused_by_engine: bool
    engine_estimate: int | None
    starts: int
    seconds: float
    complete: bool
    note: str = ""
    attempts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def max_model_len_k(self) -> str:
        """The length as the guides write it: 15K, 31.5K; empty when nothing served."""
        if self.max_model_len is None:
            return ""
        return f"{self.max_model_len / 1024:g}K"

    def csv_row(self) -> dict[str, object]:
        data = asdict(self)
        data["max_model_len_k"] = self.max_model_len_k
        data["seconds"] = round(self.seconds, 1)
        return {column: "" if data[column] is None else data[column] for column in COLUMNS}


def table_csv(rows: list[ProbeRow]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row.csv_row())
    return out.getvalue()


def write_table(rows: list[ProbeRow], folder: Path) -> None:
    """Write the table (replace: each call holds every probe so far); the caller made `folder`."""
    (folder / CSV_NAME).write_text(table_csv(rows), encoding="utf-8")
    document = {"probes": [{**asdict(row), "max_model_len_k": row.max_model_len_k} for row in rows]}
    (folder / JSON_NAME).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def read_table(folder: Path) -> list[dict[str, Any]]:
    """The probes of a run's capacity folder (none when the run had no probe)."""
    path = folder / JSON_NAME
    if not path.is_file():
        return []
    probes: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))["probes"]
    return probes
