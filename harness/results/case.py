"""One case's result: what was run, what was measured, what the harness's own checks said.

Schema `llmqual.case/1`: {schema, suite, case_id, valid, invalid_reasons, config, metrics, checks, environment,
records?}. `metrics` uses `vllm bench serve`'s result-JSON names (request_throughput, mean_ttft_ms, ...);
a value that could not be measured is null, never 0.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.client.openai import RequestRecord

CASE_SCHEMA = "llmqual.case/1"


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
        if self.series:
            doc["series"] = self.series
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


def write_json(path: Path, document: Any) -> Path:
    """Write atomically (temp file, rename) so a reader never sees half a result."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_suffix(path.suffix + ".tmp")
    staging.write_text(json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    staging.replace(path)
    return path
