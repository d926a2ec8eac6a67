"""One case's result: what was run, what was measured, what the harness's own checks said.

Schema `llmqual.case/3`: {schema, suite, case_id, valid, invalid_reasons, config, metrics, checks, environment,
repeats?, series?, gates?, records?}. `metrics` uses `vllm bench serve`'s result-JSON names (request_throughput,
mean_ttft_ms, ...); a value that could not be measured is null, never 0. `repeats` holds the metrics of every
measurement of the case when it was measured more than once (`metrics` are the last one's); `series` holds plot
data (loss curves); `gates` the verdicts against the baseline (`harness.gates.verdict.Verdict.as_json`);
`partial` says how much of a repeated case was measured when the run stopped before its last repeat (a partial
document is replaced by the whole one as soon as the case completes). Version 2 added repeats, series and gates;
version 3 made every verdict one shape (an accuracy gate's `delta` became `change` with `absolute: true`, a
training check's `ok` an `outcome`). Readers accept 1, 2 and 3 (`read_case`); docs/results.md describes the
document.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.client.openai import RequestRecord
from harness.secrets import redact

CASE_SCHEMA = "llmqual.case/3"
READABLE_SCHEMAS = ("llmqual.case/1", "llmqual.case/2", CASE_SCHEMA)


@dataclass
class CaseResult:
    suite: str  # "serving.static", "serving.dynamic", ...
    case_id: str
    config: dict[str, Any]
    metrics: dict[str, Any]
    checks: dict[str, Any] = field(default_factory=dict)
    invalid_reasons: list[str] = field(default_factory=list)
    records: list[RequestRecord] | None = None
    series: dict[str, list[list[float | None]]] = field(default_factory=dict)  # plot data: name -> [[x, y], ...]
    repeats: list[dict[str, Any]] = field(default_factory=list)  # metrics of each measurement, when repeated
    gates: list[dict[str, Any]] = field(default_factory=list)  # Verdict.as_json() of each judged metric
    test: str | None = None  # the pytest node id that measured it
    partial: str | None = None  # "2 of 3 repeats measured": written while the case runs, kept if the run stops

    @property
    def valid(self) -> bool:
        return not self.invalid_reasons

    def document(self, environment: dict[str, Any] | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "schema": CASE_SCHEMA,
            "suite": self.suite,
            "case_id": self.case_id,
            "valid": self.valid,
            "invalid_reasons": self.invalid_reasons,
            "config": self.config,
            "metrics": self.metrics,
            "checks": self.checks,
            "environment": environment or {},
        }
        for name in ("series", "repeats", "gates", "test", "partial"):
            if getattr(self, name):
                doc[name] = getattr(self, name)
        if self.records is not None:
            doc["records"] = [_record_json(r) for r in self.records]
        finite: dict[str, Any] = _finite(doc)
        return finite


def _record_json(record: RequestRecord) -> dict[str, Any]:
    data = dataclasses.asdict(record)
    data.pop("body", None)
    return data


def _finite(value: Any) -> Any:
    """JSON has no inf or NaN: an infinite request rate is written as the string "inf"."""
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else ("-inf" if value < 0 else None)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def read_case(path: Path) -> dict[str, Any]:
    """A case document written by this or an earlier schema version; anything else is refused by name."""
    from harness.errors import HarnessError

    try:
        document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise HarnessError(f"{path}: not a readable case result ({exc})") from exc
    if document.get("schema") not in READABLE_SCHEMAS:
        raise HarnessError(f"{path}: schema {document.get('schema')!r} is not one of {', '.join(READABLE_SCHEMAS)}")
    return document


def case_files(directory: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every case document under a run folder, with its path; files of other tools and half-written ones skipped."""
    for path in sorted(directory.rglob("*.json")):
        if path.name in ("run.json", "cases.json"):
            continue
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(document, dict) and document.get("schema") in READABLE_SCHEMAS:
            yield path, document


def metric_samples(document: dict[str, Any], metric: str) -> list[float | None]:
    """Every measurement of `metric` in a case document: one per repeat, or the single one."""
    runs = document.get("repeats") or [document.get("metrics", {})]
    return [r.get(metric) for r in runs]


def write_json(path: Path, document: Any) -> Path:
    """Write atomically (temp file, rename) so a reader never sees half a result; known secrets are masked."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_suffix(path.suffix + ".tmp")
    text = redact(json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False))
    staging.write_text(text + "\n", encoding="utf-8")
    staging.replace(path)
    return path
