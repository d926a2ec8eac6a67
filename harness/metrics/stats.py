"""Distribution summaries where an empty distribution is missing (None), never 0."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from harness.metric_names import stat_name

PERCENTILES = (50, 90, 99)


def describe(values: Sequence[float], name: str, unit: str = "ms", scale: float = 1000.0) -> dict[str, float | None]:
    """mean, median, std, p50/p90/p99 and max of `values` (seconds), scaled to `unit`, keyed vLLM-style.

    `describe(ttfts, "ttft")` gives `mean_ttft_ms`, `median_ttft_ms`, `std_ttft_ms`, `p90_ttft_ms`, ...
    Percentiles interpolate linearly between order statistics, as numpy (and `vllm bench serve`) do.
    """
    keys = ["mean", "median", "std", *(f"p{p}" for p in PERCENTILES), "max"]
    if not values:
        return {stat_name(k, name, unit): None for k in keys}
    data = np.asarray(values, dtype=float) * scale
    numbers = [
        float(np.mean(data)),
        float(np.median(data)),
        float(np.std(data)),
        *(float(np.percentile(data, p)) for p in PERCENTILES),
        float(np.max(data)),
    ]
    return {stat_name(k, name, unit): v for k, v in zip(keys, numbers, strict=True)}


def percentile(values: Sequence[float], q: float) -> float | None:
    """One percentile, or None for no data."""
    return float(np.percentile(np.asarray(values, dtype=float), q)) if values else None
