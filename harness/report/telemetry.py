"""The report's telemetry section: each device's readings over the run (per card on NPU and GPU, the server's
processes on the CPU default) with the measured windows shaded (each serving case's, each A/B window), and per
window (per side of an A/B comparison, its windows together) the mean readings and, where power is read, the
energy and output tokens per joule."""

from __future__ import annotations

import itertools
from collections import defaultdict
from html import escape
from typing import Any

from harness.metrics.telemetry import Reading, readings
from harness.report.cells import table
from harness.report.rundata import RunData
from harness.report.svg import Series, line_chart

# What each reader reports, in the order shown, with its unit.
METRICS = {
    "aicore_pct": "AICore %",
    "util_pct": "utilisation %",
    "cores": "cores busy",
    "hbm_used_mb": "HBM used (MB)",
    "memory_used_mb": "memory used (MB)",
    "rss_mb": "resident memory (MB)",
    "power_w": "power (W)",
    "temp_c": "temperature (C)",
}


Span = tuple[float, float]
Measured = tuple[str, list[Span], float | None]  # what was measured, its spans, its output tokens


def windows(run: RunData) -> list[tuple[str, float, float, float | None]]:
    """(case, start, end, output tokens) of every measured serving window, on the host's monotonic clock."""
    found = []
    for d in run.of("serving."):
        checks = d.get("checks", {})
        spans = checks.get("windows") or [checks.get("client", {}).get("window")]
        tokens = [r.get("total_output_tokens") for r in d.get("repeats") or []] or [
            d["metrics"].get("total_output_tokens")
        ]
        for i, span in enumerate(spans):
            if span and len(span) == 2:
                name = d["case_id"] if len(spans) == 1 else f"{d['case_id']} #{i + 1}"
                found.append((name, float(span[0]), float(span[1]), tokens[i] if i < len(tokens) else None))
    return found


def ab_windows(run: RunData) -> list[Measured]:
    """Each A/B comparison's windows, one entry per side: the windows measured in turn, their output tokens summed.
    A pair set aside (disturbed) is left out, as the verdict leaves it out."""
    found: dict[str, tuple[list[Span], float]] = {}
    for d in run.of("serving.ab"):
        for row in d.get("repeats") or []:
            span = row.get("window")
            if row.get("set_aside") or not span or len(span) != 2:
                continue
            spans, tokens = found.setdefault(f"A/B {d['case_id']}: {row['side']}", ([], 0.0))
            spans.append((float(span[0]), float(span[1])))
            found[f"A/B {d['case_id']}: {row['side']}"] = (spans, tokens + (row.get("total_output_tokens") or 0))
    return [(label, spans, tokens or None) for label, (spans, tokens) in found.items()]


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def energy_j(lines: list[Reading], start: float, end: float) -> float | None:
    """Joules over [start, end]: the devices' summed power at each reading, integrated by trapezoids; None without
    at least two power readings inside the window."""
    total: dict[float, float] = defaultdict(float)
    for line in lines:
        if start <= line["t"] <= end and isinstance(line.get("power_w"), int | float):
            total[line["t"]] += line["power_w"]
    points = sorted(total.items())
    if len(points) < 2:
        return None
    return sum((t1 - t0) * (p0 + p1) / 2 for (t0, p0), (t1, p1) in itertools.pairwise(points))


def _window_rows(name: str, lines: list[Reading], measured: list[Measured]) -> list[Any]:
    rows = []
    for what, spans, tokens in measured:
        inside = [line for line in lines if any(a <= line["t"] <= b for a, b in spans) and "error" not in line]
        if not inside:
            continue
        by_metric = {key: _mean([x[key] for x in inside if isinstance(x.get(key), int | float)]) for key in METRICS}
        each = [energy_j(lines, a, b) for a, b in spans]
        joules = sum(j for j in each if j is not None) if all(j is not None for j in each) else None
        shown = [by_metric[k] for k in METRICS if any(k in x for x in inside)]
        per_joule = tokens / joules if tokens and joules else None
        seconds = round(sum(b - a for a, b in spans), 2)
        rows.append([name, what, seconds, len(inside), *shown, joules, per_joule])
    return rows


def telemetry_section(run: RunData) -> str:
    """Empty when no telemetry was sampled in this run."""
    files = sorted((run.directory / "telemetry").glob("*.jsonl"))
    if not files:
        return ""
    measured: list[Measured] = [(case, [(a, b)], tokens) for case, a, b, tokens in windows(run)] + ab_windows(run)
    parts = ["<h2>Device telemetry</h2>"]
    parts.append(
        "<p>Sampled in a process of its own while the plan's server ran (suites.telemetry): npu-smi per chip on "
        "NPU, NVML per GPU, and on the CPU default the server's process tree from /proc (cores busy since the "
        "previous reading, resident memory). The shaded spans are the measured windows: each serving case's, and "
        "each window of an A/B comparison (a table row per side, its windows together; a server not measured at "
        "the time is held paused, so its own readings fall idle there). A reading of cores busy covers the time "
        "since the one before: windows shorter than the sampling interval (the A/B's) share readings with their "
        "neighbours, and the two sides' rows blur toward each other. Tokens per joule need power readings: where "
        "none are read (the CPU default) the table leaves energy out and says so.</p>"
    )
    for path in files:
        lines = readings(path)
        good = [line for line in lines if "error" not in line]
        failed = len(lines) - len(good)
        if not good:
            parts.append(f"<p>{escape(path.name)}: no reading succeeded ({failed} failed).</p>")
            continue
        first = good[0]["t"]
        devices = sorted({str(line["device"]) for line in good})
        present = [key for key in METRICS if any(key in line for line in good)]
        bands = [(a - first, b - first, what) for what, spans, _ in measured for a, b in spans if b >= first]
        note = f" ({failed} readings failed, recorded in the file)" if failed else ""
        parts.append(f"<h3>{escape(path.stem)}</h3><p>{len(good)} readings of {len(devices)} device(s){note}.</p>")
        for key in present:
            series = [
                Series(device, [(line["t"] - first, line.get(key)) for line in good if line["device"] == device])
                for device in devices
            ]
            parts.append(
                line_chart(
                    f"telemetry-{key}",
                    f"{METRICS[key]} over the run",
                    series,
                    "seconds since the first reading",
                    METRICS[key],
                    bands=bands,
                )
            )
        headers = ["server", "window", "seconds", "readings", *(METRICS[k] for k in present), "energy (J)",
                   "output tokens per J"]  # fmt: skip
        rows = _window_rows(path.stem, good, measured)
        if not any(isinstance(line.get("power_w"), int | float) for line in good):  # the CPU default reads none
            parts.append("<p>No power readings from these devices: no energy or tokens per joule.</p>")
            headers, rows = headers[:-2], [row[:-2] for row in rows]
        parts.append(table(headers, rows))
    return "".join(parts)
