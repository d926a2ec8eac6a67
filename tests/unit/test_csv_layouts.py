"""CSV renderers: the AscendCloud layout byte for byte (BOM, Chinese headers), English headers, missing cells."""

from __future__ import annotations

import csv
from pathlib import Path

from harness.results.csv_layouts import DYNAMIC, STATIC, append_row, columns, header

# The header of the AscendCloud static benchmark CSV, as those tools write it (UTF-8 with BOM).
ASCENDCLOUD_STATIC = (
    "输入长度,输出长度,并发数,输出tokens总吞吐,首tokens时延TP90（ms）,首tokens时延TP99（ms）,最大首tokens时延（ms）,"
    "平均首tokens时延（ms）,增量时延TP90（ms）,增量时延TP99（ms）,最大增量时延（ms）,平均增量时延（ms）"
)
ASCENDCLOUD_DYNAMIC = (
    "数据集,输入平均长度（tokens）,输出平均长度（tokens）,请求频率（req/s）,请求吞吐（req/s）,请求平均时延（s）,"
    "平均输出tokens吞吐（tokens/s）,单请求每tokens平均时延（ms）,首tokens平均时延（ms）,输出tokens总吞吐（tokens/s）"
)


def _static_doc(parallel: int, ttft_p99: float | None) -> dict[str, object]:
    metrics = {
        "output_throughput": 290.11666,
        "p90_ttft_ms": 328.044,
        "p99_ttft_ms": ttft_p99,
        "max_ttft_ms": 338.2382,
        "mean_ttft_ms": 124.0077,
        "p90_itl_ms": 7.6537,
        "p99_itl_ms": 9.6068,
        "max_itl_ms": 14.132,
        "mean_itl_ms": 6.6524,
    }
    return {"config": {"prompt_tokens": 512, "output_tokens": 512, "parallel_num": parallel}, "metrics": metrics}


def test_static_ascendcloud_file_matches_the_tools_layout(tmp_path: Path) -> None:
    path = tmp_path / "static.csv"
    append_row(path, STATIC, "ascendcloud", _static_doc(2, 337.2188))
    append_row(path, STATIC, "ascendcloud", _static_doc(4, None))
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf"), "UTF-8 with BOM, once"
    assert raw.count(b"\xef\xbb\xbf") == 1
    assert raw.count(b"\r\n") == 3, "CRLF after every line, as csv.writer (and so the tools) write"
    assert b"\n" not in raw.replace(b"\r\n", b"")
    lines = raw.decode("utf-8-sig").splitlines()
    assert lines[0] == ASCENDCLOUD_STATIC
    assert lines[1] == "512.0,512.0,2,290.1167,328.044,337.2188,338.2382,124.0077,7.6537,9.6068,14.132,6.6524"
    assert lines[2].split(",")[5] == "", "a missing value is an empty cell, never 0"


def test_english_layout_has_the_same_columns(tmp_path: Path) -> None:
    path = tmp_path / "static.en.csv"
    append_row(path, STATIC, "english", _static_doc(2, 1.0))
    with path.open(encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0][:4] == ["input_len", "output_len", "parallel_num", "output_throughput"]
    assert len(rows[0]) == len(rows[1]) == 12
    assert not path.read_bytes().startswith(b"\xef\xbb\xbf")


def test_dynamic_header_and_speculative_columns() -> None:
    assert ",".join(header(DYNAMIC, "ascendcloud")) == ASCENDCLOUD_DYNAMIC
    spec = header(columns("static", spec_decode=True), "ascendcloud")
    assert spec[-5:] == ["投机接受率TP90", "投机接受率TP99", "投机最大接受率", "投机最小接受率", "投机平均接受率"]
    assert len(columns("dynamic", spec_decode=True)) == len(DYNAMIC)


def test_the_english_twin_writes_whole_lengths_without_a_point(tmp_path: Path) -> None:
    """The AscendCloud file keeps the tools' `512.0`; the English one wrote `64.0` for a length of 64."""
    path = tmp_path / "static.en.csv"
    append_row(path, STATIC, "english", _static_doc(2, 337.2188))
    assert path.read_text(encoding="utf-8").splitlines()[1].startswith("512,512,2,290.1167,")
