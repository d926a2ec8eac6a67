"""Where case results go as each case finishes: its JSON document, and a row in each CSV asked for."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.paths import inside
from harness.results.case import CaseResult, write_json
from harness.results.csv_layouts import Layout, append_row, columns


@dataclass
class CaseSink:
    """Writes into `directory`: `<suite>/<case-id>.json` per case, and rows into `csv` targets per suite kind.

    `csv` maps a CSV kind ("static", "dynamic") to the (path, layout) files that kind's rows are appended to.
    `environment_of` gives the fingerprint of a platform (computed once per platform); without it `environment`
    is used for every case.
    """

    directory: Path
    environment: dict[str, Any] = field(default_factory=dict)
    csv: dict[str, list[tuple[Path, Layout]]] = field(default_factory=dict)
    written: list[Path] = field(default_factory=list)
    documents: list[dict[str, Any]] = field(default_factory=list)
    environment_of: Callable[[str | None], dict[str, Any]] | None = None
    _environments: dict[str | None, dict[str, Any]] = field(default_factory=dict)

    def environment_for(self, platform: str | None) -> dict[str, Any]:
        if self.environment_of is None:
            return self.environment
        if platform not in self._environments:
            self._environments[platform] = self.environment_of(platform)
        return self._environments[platform]

    @classmethod
    def for_run(
        cls,
        run_dir: Path,
        environment: dict[str, Any],
        environment_of: Callable[[str | None], dict[str, Any]] | None = None,
    ) -> CaseSink:
        """The layout of a pytest run: `serving/<kind>.csv` (AscendCloud) and `serving/<kind>.en.csv`."""
        serving = run_dir / "serving"
        targets = {
            kind: [(serving / f"{kind}.csv", "ascendcloud"), (serving / f"{kind}.en.csv", "english")]
            for kind in ("static", "dynamic")
        }
        return cls(run_dir, environment, targets, environment_of=environment_of)  # type: ignore[arg-type]

    def path_of(self, result: CaseResult) -> Path:
        return inside(self.directory, *result.suite.split("."), f"{result.case_id}.json")

    def write_partial(self, result: CaseResult, platform: str | None = None) -> tuple[dict[str, Any], Path]:
        """Write a case still being measured (its document only); `write` replaces it when the case completes."""
        document = result.document(self.environment_for(platform) if platform else self.environment)
        return document, write_json(self.path_of(result), document)

    def write(self, result: CaseResult, csv_kind: str | None = None, platform: str | None = None) -> dict[str, Any]:
        """Write the case's document and CSV rows now; returns the document."""
        document = result.document(self.environment_for(platform) if platform else self.environment)
        path = write_json(self.path_of(result), document)
        self.written.append(path)
        self.documents.append(document)
        if csv_kind is not None:
            spec = bool(document["checks"].get("server", {}).get("spec_decode_acceptance_rate") is not None)
            deployment = document["config"].get("deployment") is not None
            for target, layout in self.csv.get(csv_kind, []):
                append_row(target, columns(csv_kind, spec, deployment), layout, document)
        return document


def _num(value: Any, unit: str) -> str:
    return "missing" if value is None else f"{value:.1f} {unit}"


def case_line(document: dict[str, Any]) -> str:
    """One line for the terminal: a case's key numbers and, when it is not valid, why."""
    m = document["metrics"]
    head = f"{document['suite']} {document['case_id']}: "
    if document["suite"] == "serving.ab":  # two sides and the paired verdict
        sides = ", ".join(f"{key} {_num(value, '')}".rstrip() for key, value in m.items())
        verdicts = "; ".join(f"{g['outcome'].upper()} {g['message']}" for g in document.get("gates", []))
        body = f"{sides}; {verdicts}"
    elif document["suite"].startswith("serving."):
        body = (
            f"{m.get('completed', 'missing')}/{m.get('num_requests', 'missing')} completed, "
            f"output {_num(m.get('output_throughput'), 'tok/s')}, "
            f"TTFT p99 {_num(m.get('p99_ttft_ms'), 'ms')}, TPOT mean {_num(m.get('mean_tpot_ms'), 'ms')}"
        )
    else:
        shown = [
            f"{key} {value if isinstance(value, int) else format(value, '.4f')}"
            + (f" ± {m[key + '/stderr']:.4f}" if m.get(key + "/stderr") is not None else "")
            for key, value in m.items()
            if not key.endswith("/stderr") and isinstance(value, int | float)
        ]
        body = ", ".join(shown) or "no metrics"
    if document.get("config", {}).get("deployment"):
        body += f" [through the {document['config']['deployment']} deployment]"
    unmeasurable = document.get("checks", {}).get("per_token_unmeasurable")
    if unmeasurable:
        body += f" [TPOT/ITL NOT MEASURED: {unmeasurable}]"
    if not document["valid"]:
        body += " [INVALID: " + "; ".join(document["invalid_reasons"]) + "]"
    if document.get("partial"):
        body += f" [PARTIAL: {document['partial']}]"
    return head + body
