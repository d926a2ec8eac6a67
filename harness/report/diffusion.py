"""The report's diffusion section: latency per image and images/s per case (resolution x steps x batch), each
case's sample image inline (the report is one file that opens offline), and latency against image size."""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path

from harness.metric_names import (
    IMAGES_PER_S,
    MEAN_LATENCY_PER_IMAGE_MS,
    MEDIAN_LATENCY_PER_IMAGE_MS,
    P90_LATENCY_PER_IMAGE_MS,
)
from harness.report.cells import table
from harness.report.rundata import RunData
from harness.report.svg import Series, line_chart

MAX_INLINE_BYTES = 256 * 1024  # a larger sample is linked, not embedded


def _sample(run: RunData, relative: str | None) -> str:
    if not relative:
        return ""
    path = run.directory / relative
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    if len(data) > MAX_INLINE_BYTES:
        return f'<a href="{escape(relative)}">{escape(Path(relative).name)}</a>'
    encoded = base64.b64encode(data).decode()
    return f'<img alt="sample of {escape(relative)}" src="data:image/png;base64,{encoded}">'


def diffusion_section(run: RunData) -> str:
    """Empty when the run measured no diffusion case."""
    docs = [d for d in run.documents if d["suite"].startswith("diffusion.")]
    if not docs:
        return ""
    rows = []
    for d in docs:
        m, c = d["metrics"], d["config"]
        rows.append(
            [
                d["case_id"],
                c.get("engine"),
                f"{c.get('height')}x{c.get('width')}",
                c.get("steps"),
                c.get("batch"),
                m.get(IMAGES_PER_S),
                m.get(MEAN_LATENCY_PER_IMAGE_MS),
                m.get(MEDIAN_LATENCY_PER_IMAGE_MS),
                m.get(P90_LATENCY_PER_IMAGE_MS),
                m.get("mean_warmup_call_ms"),
                m.get("load_s"),
                "yes" if d.get("valid", True) else "; ".join(d.get("invalid_reasons", [])),
            ]
        )
    headers = ["case", "engine", "HxW", "steps", "batch", "images/s", "mean ms/image", "median ms/image",
               "p90 ms/image", "warm-up call ms", "load s", "valid"]  # fmt: skip
    by_engine: dict[str, list[tuple[float, float | None]]] = {}
    for d in docs:
        pixels = (d["config"].get("height") or 0) * (d["config"].get("width") or 0)
        by_engine.setdefault(str(d["config"].get("engine")), []).append(
            (pixels / 1000.0, d["metrics"].get(MEAN_LATENCY_PER_IMAGE_MS))
        )
    chart = line_chart(
        "diffusion-latency",
        "Latency per image against image size",
        [Series(engine, sorted(points)) for engine, points in by_engine.items()],
        "kilopixels",
        "ms per image",
    )
    samples = "".join(
        f"<figure>{_sample(run, d['config'].get('sample'))}<figcaption>{escape(d['case_id'])}</figcaption></figure>"
        for d in docs
        if d["config"].get("sample")
    )
    intro = (
        "<p>Text-to-image per case: warm-up calls excluded, then the plan's repeats of a window of calls, every call "
        "with prompts no earlier call had. Latency per image is a call's time over the images it made.</p>"
    )
    return "<h2>Diffusion</h2>" + intro + table(headers, rows) + chart + (f"<div>{samples}</div>" if samples else "")
