"""A case as the JSON document `vllm bench serve --save-result` writes, so vLLM's own comparison and plotting
scripts read llmqual's measurements.

The fields, their order and their units are vLLM 0.32's (`vllm/benchmarks/serve.py`): the setup (date, backend,
label, model and tokenizer ids, num_prompts, metadata), the traffic (request_rate, "inf" when unpaced, burstiness,
max_concurrency), the totals and throughputs, `max_output_tokens_per_s` and `max_concurrent_requests` (the busiest
second), the per-request `latencies` and `queue_times`, and mean / median / std / pNN in milliseconds for the
--percentile-metrics (TTFT, TPOT and ITL unless named; E2EL on request) at the --metric-percentiles (99). With
`detailed` the per-request arrays vLLM writes under `--save-detailed` are added (input and output lengths, TTFTs,
ITLs, start times, generated texts, errors). Times in the arrays are seconds, as vLLM's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from harness.client.openai import RequestRecord
from harness.metric_names import REQUEST_GOODPUT
from harness.metrics.serving import e2el, itls, ttft
from harness.paths import file_name

METRICS = ("ttft", "tpot", "itl", "e2el")
DEFAULT_METRICS = ("ttft", "tpot", "itl")  # vLLM's --percentile-metrics default for generative models
DETAILED = ("input_lens", "output_lens", "ttfts", "itls", "start_times", "generated_texts", "errors")


def busiest_second(records: Sequence[RequestRecord]) -> tuple[float, int]:
    """vLLM's `max_output_tokens_per_s` and `max_concurrent_requests`: streamed steps per whole second since the
    first successful request started, and requests active in each such second; the largest of each."""
    done = [r for r in records if r.ok and r.end is not None]
    if not done:
        return 0.0, 0
    start = min(r.sent for r in done)
    seconds = math.ceil(max(r.end or 0.0 for r in done) - start) + 1
    steps = np.zeros(seconds)
    active = np.zeros(seconds)
    for record in done:
        for t in record.content_times:
            steps[int(t - start)] += 1
        active[int(record.sent - start) : int((record.end or record.sent) - start) + 1] += 1
    return float(steps.max()), int(active.max())


def _percentiles(metrics: dict[str, Any], name: str, percentiles: Sequence[float]) -> dict[str, Any]:
    out = {f"mean_{name}_ms": metrics.get(f"mean_{name}_ms"), f"median_{name}_ms": metrics.get(f"median_{name}_ms")}
    out[f"std_{name}_ms"] = metrics.get(f"std_{name}_ms")
    for p in percentiles:
        word = str(int(p)) if int(p) == p else str(p)
        out[f"p{word}_{name}_ms"] = metrics.get(f"p{word}_{name}_ms")
    return out


def vllm_result(
    document: dict[str, Any],
    records: Sequence[RequestRecord],
    backend: str,
    label: str | None = None,
    model_id: str | None = None,
    metadata: dict[str, str] | None = None,
    detailed: bool = False,
    percentiles: Sequence[float] = (99,),
    metrics_named: Sequence[str] = DEFAULT_METRICS,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The `vllm bench serve --save-result` document of one measured case (a CaseResult document and the
    records of its last measurement)."""
    config, metrics = document["config"], document["metrics"]
    rate = float(config.get("request_rate", math.inf))  # a document spells an unpaced rate "inf"
    result: dict[str, Any] = {
        "date": (now or datetime.now()).strftime("%Y%m%d-%H%M%S"),
        "endpoint_type": backend,
        "backend": backend,
        "label": label,
        "model_id": model_id or config.get("model"),
        "tokenizer_id": config.get("tokenizer"),
        "num_prompts": config.get("num_requests", metrics.get("num_requests")),
        **(metadata or {}),
        "request_rate": "inf" if math.isinf(rate) else rate,
        "burstiness": config.get("burstiness", 1.0),
        "max_concurrency": config.get("max_concurrency", config.get("parallel_num")),
    }
    peak_steps, peak_requests = busiest_second(records)
    result.update(
        duration=metrics["duration"],
        completed=metrics["completed"],
        failed=metrics["failed"],
        total_input_tokens=metrics["total_input_tokens"],
        total_output_tokens=metrics["total_output_tokens"],
        request_throughput=metrics["request_throughput"],
        request_goodput=metrics.get(REQUEST_GOODPUT),
        output_throughput=metrics["output_throughput"],
        total_token_throughput=metrics["total_token_throughput"],
    )
    first = min((r.sent for r in records), default=0.0)
    arrays: dict[str, list[Any]] = {
        "input_lens": [r.prompt_tokens or 0 for r in records],
        "output_lens": [r.completion_tokens or 0 for r in records],
        "ttfts": [ttft(r) or 0.0 for r in records],
        "itls": [itls(r) for r in records],
        "latencies": [e2el(r) or 0.0 for r in records],
        "start_times": [r.sent - first for r in records],
        "queue_times": [max(0.0, r.sent - (r.released if r.released is not None else r.sent)) for r in records],
        "generated_texts": [r.text for r in records],
        "errors": [r.error_detail or (r.error or "") for r in records],
    }
    result.update({key: values for key, values in arrays.items() if detailed or key not in DETAILED})
    result.update(
        max_output_tokens_per_s=peak_steps,
        max_concurrent_requests=peak_requests,
        rtfx=0.0,  # vLLM's inverse real-time factor of audio input: 0 for text
    )
    server = document.get("checks", {}).get("server", {})
    if server.get("spec_decode_acceptance_rate") is not None:
        result.update(
            spec_decode_acceptance_rate=100.0 * server["spec_decode_acceptance_rate"],  # vLLM reports percent
            spec_decode_acceptance_length=server.get("spec_decode_mean_acceptance_length"),
        )
    for name in metrics_named:
        result.update(_percentiles(metrics, name, percentiles))
    return result


def result_path(
    directory: Path | None,
    filename: str | None,
    label: str,
    rate: float,
    concurrency: int | None,
    model_id: str,
    now: datetime,
) -> Path:
    """Where vLLM would write it: `--result-filename`, else
    `{label}-{rate}qps[-concurrency{N}]-{model base name}-{date}.json`, under `--result-dir`."""
    if filename is None:
        model = model_id.rstrip("/").split("/")[-1]
        concurrency_part = f"-concurrency{concurrency}" if concurrency is not None else ""
        filename = f"{label}-{rate}qps{concurrency_part}-{model}-{now.strftime('%Y%m%d-%H%M%S')}.json"
        filename = file_name(filename)
    return (directory or Path.cwd()) / filename
