"""npu-smi parsers on fixture files with every quirk of real npu-smi output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from harness.platform.npu_smi import NpuSmiInfo, parse_info, parse_list, parse_usages

DATA = Path(__file__).parent / "data" / "npu_smi"


def info(name: str) -> NpuSmiInfo:
    return parse_info((DATA / name).read_text())


def test_processes_spacing_missing_power_and_empty_names() -> None:
    parsed = info("info_910b4_processes_quirks.txt")
    assert parsed.version == "23.0.rc3"
    first, second = parsed.chips
    assert (first.npu, first.chip, first.name, first.health) == (0, 0, "910B4", "OK")
    assert (first.power_w, first.temp_c, first.aicore_pct) == (87.2, 33, 0)
    assert (first.hbm_used_mb, first.hbm_total_mb) == (20701, 65536)  # `20701/ 65536`
    assert second.health == "Warning"
    assert second.power_w is None  # `-`
    assert (second.aicore_pct, second.hbm_used_mb, second.hbm_total_mb) == (12, 2654, 32768)  # `2654 /32768`
    assert [(p.npu, p.chip, p.pid, p.name, p.memory_mb) for p in parsed.processes] == [
        (0, 0, 124528, "python3.8", 17400),
        (0, 0, 124530, "", 96),
    ]
    assert parsed.idle_npus == [1]


def test_dual_chip_card() -> None:
    parsed = info("info_a3_dual_chip.txt")
    assert [(c.npu, c.chip, c.bus_id) for c in parsed.chips] == [(0, 0, "0000:9D:00.0"), (0, 1, "0000:9F:00.0")]
    assert [c.power_w for c in parsed.chips] == [171.0, None]
    assert parsed.processes == []
    assert parsed.idle_npus == [0]


def test_card_without_hbm_column() -> None:
    (chip,) = info("info_310p_no_hbm.txt").chips
    assert (chip.npu, chip.name, chip.power_w, chip.temp_c) == (8, "310P3", None, 45)
    assert (chip.memory_used_mb, chip.memory_total_mb) == (1721, 21534)
    assert chip.hbm_used_mb is None
    assert chip.hbm_total_mb is None


def test_list_output() -> None:
    parsed = parse_list((DATA / "info_l_2card.txt").read_text())
    assert parsed.total_count == 2
    assert parsed.chips_per_npu == {0: 2, 1: 2}


def test_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["npu", "smi-parse", str(DATA / "info_910b4_processes_quirks.txt"), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["chips"][0] == {
        "npu": 0, "chip": 0, "name": "910B4", "health": "OK", "power_w": 87.2, "temp_c": 33,
        "aicore_pct": 0, "hbm_used_mb": 20701, "hbm_total_mb": 65536,
    }  # fmt: skip
    assert document["chips"][1]["power_w"] is None
    assert document["processes"][0] == {"npu": 0, "chip": 0, "pid": 124528, "name": "python3.8", "memory_mb": 17400}


def test_cli_refuses_a_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["npu", "smi-parse", str(tmp_path / "none.txt"), "--json"]) == 2
    assert "none.txt" in capsys.readouterr().err


def test_usages_of_a_single_chip_card() -> None:
    (chip,) = parse_usages((DATA / "usages_910b_single.txt").read_text())
    assert (chip.npu, chip.chip) == (3, 0)
    assert (chip.hbm_capacity_mb, chip.hbm_usage_pct, chip.aicore_pct, chip.aivector_pct) == (65536, 31, 87, 12)
    assert chip.hbm_bandwidth_pct == 22
    assert chip.other == {"ddr hugepages total(page)": "0", "ddr hugepages usage rate(%)": "0"}


def test_usages_of_a_dual_chip_card_with_missing_readings() -> None:
    first, second = parse_usages((DATA / "usages_a3_dual_chip.txt").read_text())
    assert (first.npu, first.chip, second.npu, second.chip) == (1, 0, 1, 1)
    assert first.aicore_pct is None, "`-` is missing, not 0"
    assert first.aivector_pct is None, "`NA` is missing, not 0"
    assert (second.hbm_usage_pct, second.aicore_pct) == (71, 99)
    assert second.other == {"vector core frequency(mhz)": "1650"}, "unknown keys are kept"


def test_usages_cut_before_the_chip_line_still_report_the_card() -> None:
    text = (DATA / "usages_910b_single.txt").read_text().rsplit("Chip ID", 1)[0]
    (chip,) = parse_usages(text)
    assert chip.hbm_usage_pct == 31


def test_cli_reads_usages(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["npu", "smi-parse", str(DATA / "usages_a3_dual_chip.txt"), "--json"]) == 0
    usages = json.loads(capsys.readouterr().out)["usages"]
    assert [(u["npu"], u["chip"], u["aicore_pct"]) for u in usages] == [(1, 0, None), (1, 1, 99)]
