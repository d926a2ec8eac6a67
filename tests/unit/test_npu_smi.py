"""npu-smi parsers on fixture files with every quirk DESIGN.md §5 lists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from harness.platform.npu_smi import NpuSmiInfo, parse_info, parse_list

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
