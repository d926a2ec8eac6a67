"""The names of the metrics llmqual writes into case documents, CSVs and baselines, spelt once.

Serving metrics keep `vllm bench serve`'s result-JSON names so numbers compare with it; latency statistics are
`<statistic>_<quantity>_ms` (`stat_name`). What each one means: docs/metrics.md.
"""

from __future__ import annotations

# Serving: counts and rates over the measurement's duration (first send to last completion).
REQUEST_THROUGHPUT = "request_throughput"
OUTPUT_THROUGHPUT = "output_throughput"
TOTAL_TOKEN_THROUGHPUT = "total_token_throughput"
REQUEST_GOODPUT = "request_goodput"
MEAN_REQUEST_OUTPUT_THROUGHPUT = "mean_request_output_throughput"

STATISTICS = ("mean", "median", "std", "p50", "p90", "p99", "max")
LATENCIES = ("ttft", "tpot", "itl", "e2el")


def stat_name(statistic: str, quantity: str, unit: str = "ms") -> str:
    """`stat_name("median", "ttft")` is `median_ttft_ms`."""
    return f"{statistic}_{quantity}_{unit}"


MEAN_TTFT_MS = stat_name("mean", "ttft")
MEDIAN_TTFT_MS = stat_name("median", "ttft")
P90_TTFT_MS = stat_name("p90", "ttft")
P99_TTFT_MS = stat_name("p99", "ttft")
MAX_TTFT_MS = stat_name("max", "ttft")
MEAN_TPOT_MS = stat_name("mean", "tpot")
P99_TPOT_MS = stat_name("p99", "tpot")
MEAN_ITL_MS = stat_name("mean", "itl")
P90_ITL_MS = stat_name("p90", "itl")
P99_ITL_MS = stat_name("p99", "itl")
MAX_ITL_MS = stat_name("max", "itl")
MEAN_E2EL_MS = stat_name("mean", "e2el")

# Training.
TOKENS_PER_S_PER_CARD = "tokens_per_s_per_card"
SAMPLES_PER_S = "samples_per_s"
FIRST_LOSS = "first_loss"
FINAL_LOSS = "final_loss"

# Capacity: the highest request rate whose repeats meet every objective.
SUSTAINABLE_RATE_PER_S = "sustainable_rate_per_s"

# Diffusion.
IMAGES_PER_S = "images_per_s"
MEAN_LATENCY_PER_IMAGE_MS = stat_name("mean", "latency_per_image")
MEDIAN_LATENCY_PER_IMAGE_MS = stat_name("median", "latency_per_image")
P90_LATENCY_PER_IMAGE_MS = stat_name("p90", "latency_per_image")
MIN_LATENCY_PER_IMAGE_MS = stat_name("min", "latency_per_image")
MAX_LATENCY_PER_IMAGE_MS = stat_name("max", "latency_per_image")
