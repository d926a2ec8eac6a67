"""What `llmqual bench` writes as each case finishes: the CSV row (AscendCloud layout or English), the growing
--result-json, and with --save-result the case as `vllm bench serve --save-result` writes it (docs/results.md)."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from harness.bench import ascendcloud
from harness.results.case import CaseResult, write_json
from harness.results.csv_layouts import Layout, append_row, columns, sort_rows
from harness.results.sink import case_line
from harness.results.vllm_format import result_path, vllm_result


class CaseOutputs:
    """Writes each case's CSV row, the growing --result-json and its vLLM result file as cases finish."""

    def __init__(self, args: argparse.Namespace, kind: str, backend: str) -> None:
        self.args, self.kind, self.backend = args, kind, backend
        self.spec = kind == "static" and args.use_spec_decode
        self.summaries: list[dict[str, Any]] = []
        self.failed = False

    def _document(self, result: CaseResult) -> dict[str, Any]:
        document = result.document()
        document["config"]["num_scheduler_steps"] = self.args.num_scheduler_steps
        if self.spec:
            document["config"]["num_speculative_tokens"] = self.args.num_speculative_tokens
        return document

    @staticmethod
    def _flat(document: dict[str, Any]) -> dict[str, Any]:
        flat = {**document["config"], **document["metrics"], **document["checks"].get("server", {})}
        flat.update({f"client_{key}": value for key, value in document["checks"].get("client", {}).items()})
        flat.update(valid=document["valid"], invalid_reasons=document["invalid_reasons"])
        for key in ("partial", "repeats"):  # every repeat's metrics, when --repeats measured more than one
            if document.get(key):
                flat[key] = document[key]
        return flat

    def progress(self, result: CaseResult) -> None:
        """A case between repeats: into --result-json at once (marked partial), so a stopped run keeps it."""
        if self.args.result_json is not None:
            write_json(self.args.result_json, [*self.summaries, self._flat(self._document(result))])

    def add(self, result: CaseResult) -> None:
        document = self._document(result)
        print(case_line(document), flush=True)
        lines = ascendcloud.static_lines(document) if self.kind == "static" else ascendcloud.dynamic_lines(document)
        for line in [*lines, *ascendcloud.token_check_lines(document)]:
            print(f"  {line}", flush=True)
        layout: Layout = self.args.csv_layout
        append_row(self.args.benchmark_csv, columns(self.kind, self.spec), layout, document)
        self.summaries.append(self._flat(document))
        if self.args.result_json is not None:
            write_json(self.args.result_json, self.summaries)
        if self.args.save_result:
            self._save_vllm(document, result)
        self.failed |= bool(document["metrics"]["failed"]) or not document["valid"]

    def _save_vllm(self, document: dict[str, Any], result: CaseResult) -> None:
        now = datetime.now()
        label = self.args.label or self.backend
        model_id = self.args.model or self.args.tokenizer
        config = document["config"]
        concurrency = config.get("max_concurrency", config.get("parallel_num"))
        rate = float(config.get("request_rate", "inf"))
        path = result_path(self.args.result_dir, self.args.result_filename, label, rate, concurrency, model_id, now)
        saved = vllm_result(
            document, result.records or [], self.backend, label, model_id, self.args.metadata_pairs,
            self.args.save_detailed, self.args.percentile_values, self.args.percentile_names, now,
        )  # fmt: skip
        appended = self.args.result_filename is not None and len(self.summaries) > 1
        write_vllm_line(path, saved, append=appended)

    def finish(self) -> None:
        """The CSV in the scripts' order: static by (input, output, parallel) for random prompts, by parallel for a
        dataset; dynamic by request rate."""
        if self.kind == "dynamic":
            key = [3]
        elif self.args.dataset_type == "random":
            key = [0, 1, 2]
        else:
            key = [2]
        sort_rows(self.args.benchmark_csv, key)


def write_vllm_line(path: Path, document: dict[str, Any], append: bool) -> None:
    """A vLLM result file: one JSON document, or (append) one more, newline-separated, as `--append-result`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a" if append else "w", encoding="utf-8") as out:
        if append and out.tell() != 0:
            out.write("\n")
        json.dump(document, out)
