"""A run folder read back: its summary, each test's outcome and every case document. What the renderers take."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.results.case import case_files


@dataclass
class RunData:
    directory: Path
    summary: dict[str, Any]
    records: list[dict[str, Any]]
    documents: list[dict[str, Any]] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return self.directory.name

    def of(self, prefix: str) -> list[dict[str, Any]]:
        """The case documents of the suites whose name starts with `prefix` (`serving.`, `accuracy.lm_eval`)."""
        return [d for d in self.documents if d["suite"].startswith(prefix)]

    @property
    def incomplete(self) -> str | None:
        """Why this run's results are not the whole run (killed, interrupted, a case cut short), or None."""
        if not self.summary:
            return "the run was stopped before it could write its summary (killed?); its results are partial"
        if self.summary.get("exit_status") == 2:
            return "the run was interrupted; its results are partial"
        cut = [d["case_id"] for d in self.documents if d.get("partial")]
        return f"cases cut short: {', '.join(cut)}" if cut else None

    def identity(self) -> dict[str, str]:
        """What a run measured, for telling whether two runs can be compared: its plan, model and device."""
        plans = sorted(set((self.summary.get("plan_names") or {}).values()))
        models = sorted({str(m) for d in self.documents if (m := d.get("config", {}).get("model"))})
        if not models:
            models = sorted({str(s["model"]) for s in self.summary.get("servers", []) if s.get("model")})
        device = (self.summary.get("environment") or {}).get("device")
        return {
            "plan": ", ".join(plans) or "unknown",
            "model": ", ".join(models) or "unknown",
            "device": str(device or "unknown"),
        }


def distribution(records: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Per-request TTFT and end-to-end latency (ms) of the requests that completed, for histograms."""
    done = [r for r in records if r.get("error") is None and r.get("end") is not None]
    return {
        "ttft_ms": [(r["content_times"][0] - r["sent"]) * 1000.0 for r in done if r.get("content_times")],
        "e2el_ms": [(r["end"] - r["sent"]) * 1000.0 for r in done],
    }


def _case_documents(directory: Path) -> list[dict[str, Any]]:
    documents = []
    for path, document in case_files(directory):
        records = document.pop("records", None) or []  # per-request records stay in the case file
        if records:
            document["distribution"] = distribution(records)
        document["path"] = str(path.relative_to(directory))
        documents.append(document)
    return documents


def load_run(directory: Path) -> RunData:
    """Read a run folder; a folder that is not a run is refused by name."""
    if not (directory / "results.jsonl").is_file() and not (directory / "run.json").is_file():
        raise HarnessError(f"{directory} is not an llmqual run folder (no results.jsonl or run.json)")
    summary: dict[str, Any] = {}
    if (directory / "run.json").is_file():
        try:
            summary = json.loads((directory / "run.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise HarnessError(
                f"{directory / 'run.json'}: unreadable ({exc}); delete it and the report is rebuilt from the "
                "results and case files, as for an interrupted run"
            ) from exc
    records = []
    if (directory / "results.jsonl").is_file():
        for line in (directory / "results.jsonl").read_text(encoding="utf-8").splitlines():
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # the last line of an interrupted run
    return RunData(directory, summary, records, _case_documents(directory))


def resolve_run(given: str, reports: Path) -> Path:
    """A run folder from a path, a run id under `reports`, or "latest"."""
    for candidate in (Path(given), reports / given):
        if candidate.is_dir():
            return candidate.resolve()
    raise HarnessError(f"no run folder {given!r} (looked in . and {reports}); give a path or a run id")
