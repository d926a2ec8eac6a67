"""Where a profile's time goes: the top operators by self time. Pure.

Two formats are read:

- **torch's Chrome trace** (`*.pt.trace.json[.gz]`, what vLLM's torch profiler writes on CPU and GPU): complete
  events (`"ph": "X"`) of category `cpu_op` (and `kernel` on GPU), nested per thread. An operator's self time is its
  duration less its direct children's on the same thread, as torch's own `key_averages()` counts it.
- **torch_npu's operator statistics** (`ASCEND_PROFILER_OUTPUT/op_statistic.csv`, what vllm-ascend's profiler writes
  with its Text export): one row per operator type with its total device time in µs.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OPERATOR_CATEGORIES = frozenset({"cpu_op", "kernel", "gpu_op"})


@dataclass(frozen=True)
class OperatorTime:
    name: str
    self_us: float
    calls: int
    share: float  # of the profile's total self time over the operators counted

    def as_json(self) -> dict[str, object]:
        return dict(vars(self))


def _ranked(totals: dict[str, float], calls: dict[str, int], top: int) -> list[OperatorTime]:
    whole = sum(totals.values()) or 1.0
    ranked = sorted(totals.items(), key=lambda item: (-item[1], item[0]))[:top]
    return [OperatorTime(name, round(us, 3), calls[name], round(us / whole, 6)) for name, us in ranked]


def self_times(events: Iterable[dict[str, Any]], top: int = 20) -> list[OperatorTime]:
    """The `top` operators of a Chrome trace's events by self time (µs)."""
    by_thread: dict[tuple[Any, Any], list[tuple[float, float, str]]] = defaultdict(list)
    for event in events:
        if event.get("ph") == "X" and event.get("cat") in OPERATOR_CATEGORIES and "dur" in event:
            key = (event.get("pid"), event.get("tid"))
            by_thread[key].append((float(event["ts"]), float(event["dur"]), str(event.get("name", "?"))))
    totals: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)
    for spans in by_thread.values():
        spans.sort(key=lambda s: (s[0], -s[1]))  # a parent before the children that start with it
        stack: list[list[Any]] = []  # [end, name, own time so far]
        for start, duration, name in spans:
            while stack and start >= stack[-1][0]:
                _close(stack.pop(), totals)
            if stack:
                stack[-1][2] -= duration  # the child's time is not its parent's own
            stack.append([start + duration, name, duration])
            calls[name] += 1
        while stack:
            _close(stack.pop(), totals)
    return _ranked(totals, calls, top)


def _close(frame: list[Any], totals: dict[str, float]) -> None:
    totals[frame[1]] += max(0.0, frame[2])


def read_trace(path: Path) -> list[dict[str, Any]]:
    """The events of a torch Chrome trace file (gzipped or not)."""
    raw = path.read_bytes()
    text = gzip.decompress(raw) if path.suffix == ".gz" else raw
    document = json.loads(text)
    events: list[dict[str, Any]] = document.get("traceEvents", []) if isinstance(document, dict) else document
    return events


def npu_operator_times(op_statistic_csv: str, top: int = 20) -> list[OperatorTime]:
    """The `top` operator types of torch_npu's op_statistic.csv by total device time."""
    totals: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)
    for row in csv.DictReader(io.StringIO(op_statistic_csv)):
        name = row.get("OP Type") or row.get("Op Type") or "?"
        totals[name] += float(row.get("Total Time(us)") or 0.0)
        calls[name] += int(float(row.get("Count") or 0))
    return _ranked(totals, calls, top)


def trace_files(folder: Path) -> list[Path]:
    """The profile files under `folder`: torch traces, else torch_npu's operator statistics."""
    return sorted(folder.rglob("*.pt.trace.json*")) or sorted(folder.rglob("op_statistic.csv"))


def operators_of(files: list[Path], top: int = 20) -> list[OperatorTime]:
    """The top operators over `files` (torch traces, or torch_npu op_statistic.csv files); [] for none."""
    traces = [f for f in files if ".pt.trace.json" in f.name]
    if traces:
        return self_times([event for trace in traces for event in read_trace(trace)], top)
    statistics = [f for f in files if f.name == "op_statistic.csv"]
    if statistics:
        text = "".join(s.read_text(encoding="utf-8") if i == 0 else _body(s) for i, s in enumerate(statistics))
        return npu_operator_times(text, top)
    return []


def _body(path: Path) -> str:
    """A CSV file without its header line (the next card's statistics appended to the first's)."""
    return "".join(path.read_text(encoding="utf-8").splitlines(keepends=True)[1:])
