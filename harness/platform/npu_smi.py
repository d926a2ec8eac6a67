"""Parsers for `npu-smi` output: `npu-smi info` and `npu-smi info -l`.

`npu-smi info` prints a box-drawn table: per NPU a row `NPU Name | Health | Power(W) Temp(C) Hugepages` and per
chip a row `Chip | Bus-Id | AICore(%) Memory-Usage(MB) HBM-Usage(MB)` (dual-chip cards repeat the NPU row per
chip; 310P cards have no HBM column), then a process table `NPU Chip | Process id | Process name | Process
memory(MB)` or `No running processes found in NPU N`. Quirks handled: `20701/ 65536` spacing, `-` or `NA` for a
missing reading (None here), empty process names, trailing spaces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

BUS_ID = re.compile(r"^[0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-9A-Fa-f]$")
NO_PROCESSES = re.compile(r"No running processes found in NPU\s+(\d+)")
MISSING = {"-", "NA", "N/A", ""}


@dataclass(frozen=True)
class ChipReading:
    npu: int
    chip: int
    name: str
    health: str
    bus_id: str
    power_w: float | None
    temp_c: float | None
    aicore_pct: float | None
    memory_used_mb: float | None
    memory_total_mb: float | None
    hbm_used_mb: float | None
    hbm_total_mb: float | None


@dataclass(frozen=True)
class NpuProcess:
    npu: int
    chip: int
    pid: int
    name: str
    memory_mb: float | None


@dataclass(frozen=True)
class NpuSmiInfo:
    version: str | None
    chips: list[ChipReading] = field(default_factory=list)
    processes: list[NpuProcess] = field(default_factory=list)
    idle_npus: list[int] = field(default_factory=list)


def _number(text: str) -> float | None:
    text = text.strip()
    if text in MISSING:
        return None
    value = float(text)
    return int(value) if value.is_integer() and "." not in text else value


def _pair(text: str) -> tuple[float | None, float | None]:
    used, _, total = text.partition("/")
    return _number(used), _number(total)


def _readings(cell: str) -> list[str]:
    """The whitespace-separated readings of a cell, with `a / b`, `a/ b` and `a /b` kept as one `a/b`."""
    return re.sub(r"\s*/\s*", "/", cell.strip()).split()


def _cells(line: str) -> list[str] | None:
    """The cells of a table row, or None for borders and text outside the table."""
    stripped = line.strip()
    if not stripped.startswith("|") or set(stripped) <= set("+-=| "):
        return None
    return [c.strip() for c in stripped.strip("|").split("|")]


def parse_info(text: str) -> NpuSmiInfo:
    """Parse `npu-smi info`."""
    version_match = re.search(r"Version:\s*(\S+)", text)
    info = NpuSmiInfo(version_match.group(1) if version_match else None)
    current: tuple[int, str, str, float | None, float | None] | None = None
    in_processes = False
    for line in text.splitlines():
        idle = NO_PROCESSES.search(line)
        if idle:
            info.idle_npus.append(int(idle.group(1)))
            continue
        cells = _cells(line)
        if cells is None or len(cells) < 3:
            continue
        if "Process id" in cells[1]:
            in_processes = True
            continue
        if in_processes:
            info.processes.append(_process(cells))
            continue
        if BUS_ID.match(cells[1]) and current is not None:
            info.chips.append(_chip(current, cells))
        elif cells[0][:1].isdigit():
            npu_id, _, name = cells[0].partition(" ")
            power, temp = ([*_readings(cells[2]), "-", "-"])[:2]
            current = (int(npu_id), name.strip(), cells[1], _number(power), _number(temp))
    return info


def _chip(npu: tuple[int, str, str, float | None, float | None], cells: list[str]) -> ChipReading:
    npu_id, name, health, power, temp = npu
    readings = _readings(cells[2])
    aicore = _number(readings[0]) if readings else None
    memory = _pair(readings[1]) if len(readings) > 1 else (None, None)
    hbm = _pair(readings[2]) if len(readings) > 2 else (None, None)
    return ChipReading(
        npu=npu_id,
        chip=int(cells[0].split()[0]),
        name=name,
        health=health,
        bus_id=cells[1],
        power_w=power,
        temp_c=temp,
        aicore_pct=aicore,
        memory_used_mb=memory[0],
        memory_total_mb=memory[1],
        hbm_used_mb=hbm[0],
        hbm_total_mb=hbm[1],
    )


def _process(cells: list[str]) -> NpuProcess:
    ids = cells[0].split()
    return NpuProcess(
        npu=int(ids[0]),
        chip=int(ids[1]) if len(ids) > 1 else 0,
        pid=int(cells[1]),
        name=cells[2] if len(cells) > 3 else "",
        memory_mb=_number(cells[-1]),
    )


@dataclass(frozen=True)
class NpuList:
    """`npu-smi info -l`: how many cards, and chips per card."""

    total_count: int
    chips_per_npu: dict[int, int]


def parse_list(text: str) -> NpuList:
    """Parse `npu-smi info -l`."""
    total = 0
    chips: dict[int, int] = {}
    npu: int | None = None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key == "Total Count":
            total = int(value)
        elif key == "NPU ID":
            npu = int(value)
            chips[npu] = 1
        elif key == "Chip Count" and npu is not None:
            chips[npu] = int(value)
    return NpuList(total, chips)


def info_as_json(info: NpuSmiInfo) -> dict[str, list[dict[str, object]]]:
    """The `llmqual npu smi-parse --json` document."""
    keys = ("npu", "chip", "name", "health", "power_w", "temp_c", "aicore_pct", "hbm_used_mb", "hbm_total_mb")
    return {
        "chips": [{k: getattr(c, k) for k in keys} for c in info.chips],
        "processes": [
            {"npu": p.npu, "chip": p.chip, "pid": p.pid, "name": p.name, "memory_mb": p.memory_mb}
            for p in info.processes
        ],
    }


@dataclass(frozen=True)
class ChipUsage:
    """`npu-smi info -t usages -i N`: one chip's utilisation. Percentages and MB; None where shown as `-`/NA.

    Keys npu-smi adds in other versions are kept in `other` (lower-case, as printed), not dropped.
    """

    npu: int
    chip: int
    hbm_capacity_mb: float | None = None
    hbm_usage_pct: float | None = None
    ddr_capacity_mb: float | None = None
    ddr_usage_pct: float | None = None
    aicore_pct: float | None = None
    aivector_pct: float | None = None
    aicpu_pct: float | None = None
    ctrlcpu_pct: float | None = None
    hbm_bandwidth_pct: float | None = None
    ddr_bandwidth_pct: float | None = None
    other: dict[str, str] = field(default_factory=dict)


USAGE_KEYS = {
    "hbm capacity(mb)": "hbm_capacity_mb",
    "hbm usage rate(%)": "hbm_usage_pct",
    "ddr capacity(mb)": "ddr_capacity_mb",
    "ddr usage rate(%)": "ddr_usage_pct",
    "aicore usage rate(%)": "aicore_pct",
    "aivector usage rate(%)": "aivector_pct",
    "aicpu usage rate(%)": "aicpu_pct",
    "ctrlcpu usage rate(%)": "ctrlcpu_pct",
    "hbm bandwidth usage rate(%)": "hbm_bandwidth_pct",
    "ddr bandwidth usage rate(%)": "ddr_bandwidth_pct",
}


def parse_usages(text: str) -> list[ChipUsage]:
    """Parse `npu-smi info -t usages -i N`: `Key : value` lines; a `Chip ID` line closes one chip's block.

    Single-chip cards print the readings then `Chip ID : 0`; dual-chip cards print one block per chip. Readings
    that come before any `NPU ID` line belong to NPU 0.
    """
    chips: list[ChipUsage] = []
    npu, values, other = 0, dict[str, float | None](), dict[str, str]()
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = " ".join(key.split()).lower(), value.strip()
        if key == "npu id":
            npu = int(value)
        elif key == "chip id":
            chips.append(ChipUsage(npu, int(value), **values, other=other))
            values, other = {}, {}
        elif key in USAGE_KEYS:
            values[USAGE_KEYS[key]] = _number(value)
        elif key != "chip count":
            other[key] = value
    if values and not chips:  # an output cut before its Chip ID line still reports the card
        chips.append(ChipUsage(npu, 0, **values, other=other))
    return chips
