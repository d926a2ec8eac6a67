"""Gate defaults and which metrics each suite gates. The numbers are the ones the simulation in
tests/unit/test_gates.py checks (false fails <= 1%, a 5% regression caught >= 95%, at a 2% run-to-run spread)."""

from __future__ import annotations

from harness.metric_names import (
    FINAL_LOSS,
    IMAGES_PER_S,
    MEAN_LATENCY_PER_IMAGE_MS,
    MEAN_TPOT_MS,
    MEDIAN_TTFT_MS,
    OUTPUT_THROUGHPUT,
    REQUEST_THROUGHPUT,
    SUSTAINABLE_RATE_PER_S,
    TOKENS_PER_S_PER_CARD,
)

DEFAULT_REPEATS = 6  # measurements of each case in a run
DEFAULT_BASELINE_SAMPLES = 10  # most recent measurements a baseline keeps per metric
DEFAULT_TOLERANCE = 0.02
DEFAULT_DETECT = 0.05
DEFAULT_CONFIDENCE = 0.99

# Per suite, the metrics a baseline records and the gate judges. Percentile tails (p99) are reported, not gated:
# they need many more repeats to be stable.
GATED_METRICS: dict[str, tuple[str, ...]] = {
    "serving.static": (OUTPUT_THROUGHPUT, MEDIAN_TTFT_MS, MEAN_TPOT_MS),
    "serving.prefix": (OUTPUT_THROUGHPUT, MEDIAN_TTFT_MS),
    "serving.multimodal": (OUTPUT_THROUGHPUT, MEDIAN_TTFT_MS),
    "serving.dynamic": (REQUEST_THROUGHPUT, OUTPUT_THROUGHPUT, MEDIAN_TTFT_MS, MEAN_TPOT_MS),
    "training.throughput": (TOKENS_PER_S_PER_CARD,),
    "capacity.sla": (SUSTAINABLE_RATE_PER_S,),  # the knee of the SLO rate search
    "training.convergence": (FINAL_LOSS,),
    "diffusion.t2i": (IMAGES_PER_S, MEAN_LATENCY_PER_IMAGE_MS),
    "diffusion.comfyui": (IMAGES_PER_S, MEAN_LATENCY_PER_IMAGE_MS),
}
