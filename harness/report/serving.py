"""The report's serving section: throughput against concurrency, TTFT/TPOT percentiles against request rate,
latency distributions, and a table of every serving case."""

from __future__ import annotations

import math
from typing import Any

from harness.metric_names import (
    MEAN_E2EL_MS,
    MEAN_TPOT_MS,
    MEAN_TTFT_MS,
    OUTPUT_THROUGHPUT,
    P99_TPOT_MS,
    P99_TTFT_MS,
    REQUEST_THROUGHPUT,
)
from harness.report.cells import table
from harness.report.rundata import RunData
from harness.report.svg import Series, cdf_chart, line_chart


def _through(document: dict[str, Any]) -> str:
    """A case's id, marked with the P/D deployment it was measured through (e.g. `p4-in128-out16 (1P1D)`)."""
    deployment = document.get("config", {}).get("deployment")
    return f"{document['case_id']} ({deployment})" if deployment else str(document["case_id"])


def _rate(value: Any) -> float | None:
    if value == "inf" or (isinstance(value, float) and math.isinf(value)):
        return math.inf
    return float(value) if isinstance(value, int | float) else None


def serving_section(run: RunData) -> str:
    static, dynamic = run.of("serving.static"), run.of("serving.dynamic")
    parts = ["<h2>Serving</h2>"]
    by_shape: dict[str, list[tuple[float, float | None]]] = {}
    for d in static:
        shape = f"in{d['config'].get('prompt_tokens')}/out{d['config'].get('output_tokens')}"
        by_shape.setdefault(shape, []).append(
            (float(d["config"].get("parallel", 0)), d["metrics"].get(OUTPUT_THROUGHPUT))
        )
    parts.append(
        line_chart(
            "throughput-vs-concurrency",
            "Static: output throughput against concurrency",
            [Series(k, sorted(v)) for k, v in by_shape.items()],
            "concurrent requests",
            "output tokens/s",
        )
    )
    rates = sorted({r for d in dynamic if (r := _rate(d["config"].get("request_rate"))) is not None})
    finite = [r for r in rates if math.isfinite(r)]
    inf_at = (max(finite) * 1.5 if finite else 1.0) if math.inf in rates else None
    x_names = {r: _label_rate(r) for r in finite} | ({inf_at: "inf"} if inf_at is not None else {})
    for metric in ("ttft", "tpot"):
        series = []
        for stat in ("mean", "p50", "p90", "p99"):
            points = []
            for d in dynamic:
                rate = _rate(d["config"].get("request_rate"))
                if rate is not None:
                    points.append((inf_at if math.isinf(rate) else rate, d["metrics"].get(f"{stat}_{metric}_ms")))
            series.append(Series(stat, sorted((x, y) for x, y in points if x is not None)))
        parts.append(
            line_chart(
                f"{metric}-vs-rate",
                f"Dynamic: {metric.upper()} percentiles against request rate",
                series,
                "request rate (req/s)",
                f"{metric.upper()} (ms)",
                x_names or None,
            )
        )
    distributions = {f"{d['suite'].split('.')[-1]} {d['case_id']}": d.get("distribution", {}) for d in static + dynamic}
    for metric, label in (("ttft_ms", "TTFT"), ("e2el_ms", "end-to-end latency")):
        samples = {name: dist.get(metric, []) for name, dist in distributions.items() if dist.get(metric)}
        parts.append(cdf_chart(f"{metric}-distribution", f"{label}: distribution per case", samples, f"{label} (ms)"))
    keys = [
        "completed",
        OUTPUT_THROUGHPUT,
        REQUEST_THROUGHPUT,
        MEAN_TTFT_MS,
        P99_TTFT_MS,
        MEAN_TPOT_MS,
        P99_TPOT_MS,
        MEAN_E2EL_MS,
    ]
    cases = [d for d in run.of("serving.") if d["suite"] != "serving.ab"]  # A/B has its own section (report/ab.py)
    rows = [[d["suite"], _through(d), _validity(d)] + [d["metrics"].get(k) for k in keys] for d in cases]
    parts.append(table(["suite", "case", "valid", *keys], rows))
    parts.append(_clocks(cases))
    return "".join(parts)


def _clocks(cases: list[dict[str, Any]]) -> str:
    """The client's clock against the server's, and the client's CPU, per case (harness/metrics/clock.py)."""
    rows = []
    for d in cases:
        clock, client = d.get("checks", {}).get("server_clock") or {}, d.get("checks", {}).get("client") or {}
        if clock.get("server_mean_ttft_ms") is None and client.get("cpu_cores") is None:
            continue
        flag = {True: "FLAGGED: " + str(clock.get("message", "")), False: "agrees", None: clock.get("message")}
        rows.append(
            [
                d["suite"],
                _through(d),
                d["metrics"].get(MEAN_TTFT_MS),
                clock.get("server_mean_ttft_ms"),
                clock.get("ttft_overhead_ms"),
                d["metrics"].get(MEAN_E2EL_MS),
                clock.get("server_mean_e2el_ms"),
                clock.get("e2el_overhead_ms"),
                clock.get("server_mean_queue_ms"),
                client.get("cpu_cores"),
                flag.get(clock.get("flag")),
            ]
        )
    if not rows:
        return ""
    headers = [
        "suite", "case", "client mean TTFT ms", "server mean TTFT ms", "TTFT overhead ms", "client mean E2EL ms",
        "server mean E2EL ms", "E2EL overhead ms", "server mean queue ms", "client CPU (cores)", "clocks",
    ]  # fmt: skip
    note = (
        "<h3>Client and server clocks</h3><p>The server's means come from vLLM's own histograms, scraped just "
        "before and after each measured window (warm-up excluded); the overhead is the client's mean minus the "
        "server's: connection, HTTP and streaming on both sides, the client's parsing, and the API server's own work "
        "before the engine stamps a request's arrival (parsing and tokenising it), which grows when many requests "
        "arrive at once. A case is flagged when its TTFT overhead exceeds the plan's share of its TTFT "
        "(suites.load.max-ttft-overhead); a flag is a question for the reader, not a failed check. Client CPU is the "
        "harness process's CPU time over the window's length, on the cores it shares with the engine.</p>"
    )
    return note + table(headers, rows)


def _label_rate(rate: float) -> str:
    return f"{rate:g}"


def _validity(document: dict[str, Any]) -> str:
    """yes, INVALID (the client fell behind), PARTIAL (cut short), or yes with TPOT/ITL not measured (bunched)."""
    if document.get("partial"):
        return f"PARTIAL: {document['partial']}"
    if not document.get("valid", True):
        return "INVALID"
    return "yes; TPOT/ITL not measured (bunched)" if document.get("checks", {}).get("per_token_unmeasurable") else "yes"
