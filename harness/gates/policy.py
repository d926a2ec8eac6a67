"""Gate defaults and which metrics each suite gates. The numbers are the ones the simulation in
tests/unit/test_gates.py checks (false fails <= 1%, a 5% regression caught >= 95%, at a 2% run-to-run spread)."""

from __future__ import annotations

DEFAULT_REPEATS = 6  # measurements of each case in a run
DEFAULT_BASELINE_SAMPLES = 10  # most recent measurements a baseline keeps per metric
DEFAULT_TOLERANCE = 0.02
DEFAULT_DETECT = 0.05
DEFAULT_CONFIDENCE = 0.99

# Per suite, the metrics a baseline records and the gate judges. Percentile tails (p99) are reported, not gated:
# they need many more repeats to be stable.
GATED_METRICS: dict[str, tuple[str, ...]] = {
    "serving.static": ("output_throughput", "median_ttft_ms", "mean_tpot_ms"),
    "serving.prefix": ("output_throughput", "median_ttft_ms"),
    "serving.multimodal": ("output_throughput", "median_ttft_ms"),
    "serving.dynamic": ("request_throughput", "output_throughput", "median_ttft_ms", "mean_tpot_ms"),
    "training.throughput": ("tokens_per_s_per_card",),
    "capacity.sla": ("sustainable_rate_per_s",),  # the knee of the SLO rate search
    "training.convergence": ("final_loss",),
    "diffusion.t2i": ("images_per_s", "mean_latency_per_image_ms"),
    "diffusion.comfyui": ("images_per_s", "mean_latency_per_image_ms"),
}
