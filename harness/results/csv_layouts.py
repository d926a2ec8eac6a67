"""CSV rows of serving results in the AscendCloud benchmark tools' layout (Chinese headers, UTF-8 with BOM) or
with English headers. Renderers over CaseResult documents; a missing value is an empty cell.
"""

from __future__ import annotations

import codecs
import csv
import io
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from harness.metric_names import (
    MAX_ITL_MS,
    MAX_TTFT_MS,
    MEAN_E2EL_MS,
    MEAN_ITL_MS,
    MEAN_REQUEST_OUTPUT_THROUGHPUT,
    MEAN_TPOT_MS,
    MEAN_TTFT_MS,
    OUTPUT_THROUGHPUT,
    P90_ITL_MS,
    P90_TTFT_MS,
    P99_ITL_MS,
    P99_TTFT_MS,
    REQUEST_THROUGHPUT,
)

Layout = Literal["ascendcloud", "english"]
Doc = dict[str, Any]
Column = tuple[str, str, Callable[[Doc], Any]]


def _m(key: str, scale: float = 1.0) -> Callable[[Doc], Any]:
    def get(doc: Doc) -> Any:
        value = doc["metrics"].get(key)
        return None if value is None else value * scale

    return get


def _c(key: str) -> Callable[[Doc], Any]:
    return lambda doc: doc["config"].get(key)


def _mean_per_request(total_key: str) -> Callable[[Doc], Any]:
    def get(doc: Doc) -> Any:
        done = doc["metrics"].get("completed")
        return doc["metrics"][total_key] / done if done else None

    return get


STATIC: list[Column] = [
    ("输入长度", "input_len", lambda d: _asked(d, "prompt")),
    ("输出长度", "output_len", lambda d: _asked(d, "output")),
    ("并发数", "parallel_num", _c("parallel_num")),
    ("输出tokens总吞吐", OUTPUT_THROUGHPUT, _m(OUTPUT_THROUGHPUT)),
    ("首tokens时延TP90（ms）", P90_TTFT_MS, _m(P90_TTFT_MS)),
    ("首tokens时延TP99（ms）", P99_TTFT_MS, _m(P99_TTFT_MS)),
    ("最大首tokens时延（ms）", MAX_TTFT_MS, _m(MAX_TTFT_MS)),
    ("平均首tokens时延（ms）", MEAN_TTFT_MS, _m(MEAN_TTFT_MS)),
    ("增量时延TP90（ms）", P90_ITL_MS, _m(P90_ITL_MS)),
    ("增量时延TP99（ms）", P99_ITL_MS, _m(P99_ITL_MS)),
    ("最大增量时延（ms）", MAX_ITL_MS, _m(MAX_ITL_MS)),
    ("平均增量时延（ms）", MEAN_ITL_MS, _m(MEAN_ITL_MS)),
]


def _asked(doc: Doc, side: str) -> float:
    """The mean length asked for (the scripts' 输入长度 / 输出长度): exact for random prompts, a dataset's mean."""
    mean = doc["config"].get(f"mean_{side}_tokens")
    return float(mean if mean is not None else doc["config"][f"{side}_tokens"])


def _mean_acceptance(doc: Doc) -> Any:
    server_rate = doc["checks"].get("server", {}).get("spec_decode_acceptance_rate")
    return doc["metrics"].get("mean_spec_acceptance_rate", server_rate)


# Per-request acceptance rates (harness.metrics.spec) when the case was measured with --num-speculative-tokens;
# else the average is the server's own rate from /metrics and the percentiles are empty.
SPEC_DECODE: list[Column] = [
    ("投机接受率TP90", "p90_spec_acceptance_rate", _m("p90_spec_acceptance_rate")),
    ("投机接受率TP99", "p99_spec_acceptance_rate", _m("p99_spec_acceptance_rate")),
    ("投机最大接受率", "max_spec_acceptance_rate", _m("max_spec_acceptance_rate")),
    ("投机最小接受率", "min_spec_acceptance_rate", _m("min_spec_acceptance_rate")),
    (
        "投机平均接受率",
        "mean_spec_acceptance_rate",
        _mean_acceptance,
    ),
]

DYNAMIC: list[Column] = [
    ("数据集", "dataset", _c("dataset")),
    ("输入平均长度（tokens）", "mean_input_tokens", _mean_per_request("total_input_tokens")),
    ("输出平均长度（tokens）", "mean_output_tokens", _mean_per_request("total_output_tokens")),
    ("请求频率（req/s）", "request_rate", _c("request_rate")),
    ("请求吞吐（req/s）", REQUEST_THROUGHPUT, _m(REQUEST_THROUGHPUT)),
    ("请求平均时延（s）", "mean_e2el_s", _m(MEAN_E2EL_MS, 0.001)),
    ("平均输出tokens吞吐（tokens/s）", MEAN_REQUEST_OUTPUT_THROUGHPUT, _m(MEAN_REQUEST_OUTPUT_THROUGHPUT)),
    ("单请求每tokens平均时延（ms）", MEAN_TPOT_MS, _m(MEAN_TPOT_MS)),
    ("首tokens平均时延（ms）", MEAN_TTFT_MS, _m(MEAN_TTFT_MS)),
    ("输出tokens总吞吐（tokens/s）", OUTPUT_THROUGHPUT, _m(OUTPUT_THROUGHPUT)),
]

LAYOUTS: dict[str, list[Column]] = {"static": STATIC, "dynamic": DYNAMIC}


# Appended when the case was measured through a prefill/decode deployment's proxy (its shape, e.g. 1P1D).
DEPLOYMENT: list[Column] = [("部署", "deployment", _c("deployment"))]


def columns(kind: str, spec_decode: bool = False, deployment: bool = False) -> list[Column]:
    return (
        LAYOUTS[kind] + (SPEC_DECODE if spec_decode and kind == "static" else []) + (DEPLOYMENT if deployment else [])
    )


def _cell(value: Any, layout: Layout) -> str:
    """A value as the layout writes it: the AscendCloud tools write floats as Python prints them (`512.0`, kept
    for whatever parses their files); the English twin writes a whole number without `.0`."""
    if value is None:
        return ""
    if isinstance(value, float):
        rounded = round(value, 4)
        return str(int(rounded)) if layout != "ascendcloud" and rounded.is_integer() else str(rounded)
    return str(value)


def header(cols: list[Column], layout: Layout) -> list[str]:
    return [cn if layout == "ascendcloud" else en for cn, en, _ in cols]


def row(cols: list[Column], doc: Doc, layout: Layout = "ascendcloud") -> list[str]:
    return [_cell(get(doc), layout) for _, _, get in cols]


def append_row(path: Path, cols: list[Column], layout: Layout, doc: Doc) -> None:
    """Append one case's row, writing the header (and, for AscendCloud, the BOM) when the file is new. Lines end
    in CRLF, as Python's csv module writes them by default and so the AscendCloud tools' files do."""
    out = io.StringIO()
    writer = csv.writer(out)
    new = not path.exists() or path.stat().st_size == 0
    if new:
        writer.writerow(header(cols, layout))
    writer.writerow(row(cols, doc, layout))
    encoding = "utf-8-sig" if new and layout == "ascendcloud" else "utf-8"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding=encoding, newline="") as f:
        f.write(out.getvalue())


def sort_rows(path: Path, key_columns: list[int]) -> None:
    """Re-sort a CSV's rows by the numeric values of `key_columns` (the header and BOM kept); a missing file is
    left missing. Written to a temporary file and moved, so an interruption leaves the unsorted file whole."""
    if not path.exists():
        return
    raw = path.read_bytes()
    bom = raw.startswith(codecs.BOM_UTF8)
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    if len(rows) < 3:
        return

    def key(row: list[str]) -> tuple[float, ...]:
        return tuple(float(row[i]) if row[i] else math.inf for i in key_columns)

    out = io.StringIO()
    csv.writer(out).writerows([rows[0], *sorted(rows[1:], key=key)])
    temporary = path.with_name(path.name + ".sorting")
    temporary.write_bytes((codecs.BOM_UTF8 if bom else b"") + out.getvalue().encode("utf-8"))
    temporary.replace(path)
