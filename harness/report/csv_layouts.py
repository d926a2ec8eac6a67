"""CSV rows of serving results in the AscendCloud benchmark tools' layout (Chinese headers, UTF-8 with BOM) or
with English headers. Renderers over CaseResult documents; a missing value is an empty cell.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

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
    ("输入长度", "input_len", lambda d: float(d["config"]["prompt_tokens"])),
    ("输出长度", "output_len", lambda d: float(d["config"]["output_tokens"])),
    ("并发数", "parallel_num", _c("parallel_num")),
    ("输出tokens总吞吐", "output_throughput", _m("output_throughput")),
    ("首tokens时延TP90（ms）", "p90_ttft_ms", _m("p90_ttft_ms")),
    ("首tokens时延TP99（ms）", "p99_ttft_ms", _m("p99_ttft_ms")),
    ("最大首tokens时延（ms）", "max_ttft_ms", _m("max_ttft_ms")),
    ("平均首tokens时延（ms）", "mean_ttft_ms", _m("mean_ttft_ms")),
    ("增量时延TP90（ms）", "p90_itl_ms", _m("p90_itl_ms")),
    ("增量时延TP99（ms）", "p99_itl_ms", _m("p99_itl_ms")),
    ("最大增量时延（ms）", "max_itl_ms", _m("max_itl_ms")),
    ("平均增量时延（ms）", "mean_itl_ms", _m("mean_itl_ms")),
]

# Per-request acceptance rates are not observable through the API; only the run's rate (from /metrics) is.
SPEC_DECODE: list[Column] = [
    ("投机接受率TP90", "p90_spec_acceptance_rate", lambda d: None),
    ("投机接受率TP99", "p99_spec_acceptance_rate", lambda d: None),
    ("投机最大接受率", "max_spec_acceptance_rate", lambda d: None),
    ("投机最小接受率", "min_spec_acceptance_rate", lambda d: None),
    (
        "投机平均接受率",
        "spec_decode_acceptance_rate",
        lambda d: d["checks"]["server"].get("spec_decode_acceptance_rate"),
    ),
]

DYNAMIC: list[Column] = [
    ("数据集", "dataset", _c("dataset")),
    ("输入平均长度（tokens）", "mean_input_tokens", _mean_per_request("total_input_tokens")),
    ("输出平均长度（tokens）", "mean_output_tokens", _mean_per_request("total_output_tokens")),
    ("请求频率（req/s）", "request_rate", _c("request_rate")),
    ("请求吞吐（req/s）", "request_throughput", _m("request_throughput")),
    ("请求平均时延（s）", "mean_e2el_s", _m("mean_e2el_ms", 0.001)),
    ("平均输出tokens吞吐（tokens/s）", "mean_request_output_throughput", _m("mean_request_output_throughput")),
    ("单请求每tokens平均时延（ms）", "mean_tpot_ms", _m("mean_tpot_ms")),
    ("首tokens平均时延（ms）", "mean_ttft_ms", _m("mean_ttft_ms")),
    ("输出tokens总吞吐（tokens/s）", "output_throughput", _m("output_throughput")),
]

LAYOUTS: dict[str, list[Column]] = {"static": STATIC, "dynamic": DYNAMIC}


def columns(kind: str, spec_decode: bool = False) -> list[Column]:
    return LAYOUTS[kind] + (SPEC_DECODE if spec_decode and kind == "static" else [])


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return str(round(value, 4))
    return str(value)


def header(cols: list[Column], layout: Layout) -> list[str]:
    return [cn if layout == "ascendcloud" else en for cn, en, _ in cols]


def row(cols: list[Column], doc: Doc) -> list[str]:
    return [_cell(get(doc)) for _, _, get in cols]


def append_row(path: Path, cols: list[Column], layout: Layout, doc: Doc) -> None:
    """Append one case's row, writing the header (and, for AscendCloud, the BOM) when the file is new."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    new = not path.exists() or path.stat().st_size == 0
    if new:
        writer.writerow(header(cols, layout))
    writer.writerow(row(cols, doc))
    encoding = "utf-8-sig" if new and layout == "ascendcloud" else "utf-8"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding=encoding, newline="") as f:
        f.write(out.getvalue())
