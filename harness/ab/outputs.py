"""What an A/B run writes as each comparison is judged: the comparison's case document, the CSV of its verdicts
(one row per comparison and metric) and, at the end, the outcome CI reads (`ab.json`)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from harness.ab.compare import Compared
from harness.results.case import write_json

COLUMNS = (
    "comparison", "case", "reference_build", "candidate_build", "expect", "metric", "reference_mean", "candidate_mean",
    "median_change", "low", "high", "resolution", "pairs", "pairs_set_aside", "verdict", "ci_outcome",
)  # fmt: skip


class ABOutputs:
    """The output folder of one `llmqual ab`; every write is immediate, so an interrupted run keeps its verdicts."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.documents: list[dict[str, Any]] = []
        self.rows: list[dict[str, Any]] = []
        self.outcomes: dict[str, str] = {}

    def add(self, compared: Compared) -> None:
        document = compared.result.document()
        self.documents.append(document)
        write_json(self.directory / f"{compared.result.case_id}.json", document)
        config = document["config"]
        for case_id, verdict in zip(compared.cases, compared.verdicts, strict=True):
            self.rows.append(
                {
                    "comparison": compared.result.case_id,
                    "case": case_id,
                    "reference_build": config["reference"]["build"],
                    "candidate_build": config["candidate"]["build"],
                    "expect": config["expect"] or "",
                    "metric": verdict.metric,
                    "reference_mean": verdict.baseline_mean,
                    "candidate_mean": verdict.candidate_mean,
                    "median_change": verdict.change,
                    "low": verdict.low,
                    "high": verdict.high,
                    "resolution": verdict.resolution,
                    "pairs": verdict.n_candidate,
                    "pairs_set_aside": config["pairs_set_aside"],
                    "verdict": verdict.outcome,
                    "ci_outcome": compared.ok_outcome,
                }
            )
        self.outcomes[compared.result.case_id] = compared.ok_outcome
        staging = self.directory / "ab.csv.tmp"
        with staging.open("w", newline="", encoding="utf-8") as out:
            writer = csv.DictWriter(out, COLUMNS)
            writer.writeheader()
            writer.writerows(self.rows)
        staging.replace(self.directory / "ab.csv")

    def finish(self, status: int) -> None:
        write_json(self.directory / "ab.json", {"exit_status": status, "comparisons": self.outcomes})
