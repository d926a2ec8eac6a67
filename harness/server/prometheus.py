"""Scrape a vLLM server's /metrics (Prometheus text) into counter totals, with prometheus_client's parser."""

from __future__ import annotations

import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from harness.server.endpoint import Endpoint

SCRAPE_TIMEOUT_S = 10.0


# Counters kept per label value as well (`name[value]`): speculative decoding's accepted tokens per draft position.
PER_LABEL = {"vllm:spec_decode_num_accepted_tokens_per_pos": "position"}
# Histograms whose sum and count are kept (`name:sum`, `name:count`): the server's own clock of each request.
HISTOGRAMS = (
    "vllm:time_to_first_token_seconds",
    "vllm:e2e_request_latency_seconds",
    "vllm:request_queue_time_seconds",
)

# Numeric labels of vLLM's info gauges kept as `family:label`: the KV block the server caches prefixes in.
INFO_LABELS = {"vllm:cache_config_info": ("block_size",)}


def counter_totals(text: str) -> dict[str, float]:
    """Every counter's value summed over its label sets, keyed by family name (`vllm:prefix_cache_hits`); the
    families of PER_LABEL also by their label (`vllm:spec_decode_num_accepted_tokens_per_pos[0]`); the sum and
    count of the HISTOGRAMS (`vllm:time_to_first_token_seconds:sum`, `...:count`); the INFO_LABELS
    (`vllm:cache_config_info:block_size`)."""
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for name in INFO_LABELS.get(family.name, ()):
            values = {sample.labels.get(name) for sample in family.samples} - {None}
            if len(values) == 1 and str(next(iter(values))).isdigit():
                totals[f"{family.name}:{name}"] = float(str(next(iter(values))))
        if family.type == "histogram" and family.name in HISTOGRAMS:
            for sample in family.samples:
                for suffix in ("sum", "count"):
                    if sample.name == f"{family.name}_{suffix}":
                        key = f"{family.name}:{suffix}"
                        totals[key] = totals.get(key, 0.0) + sample.value
            continue
        if family.type != "counter":
            continue
        label = PER_LABEL.get(family.name)
        for sample in family.samples:
            if sample.name.endswith("_total"):
                totals[family.name] = totals.get(family.name, 0.0) + sample.value
                if label is not None and label in sample.labels:
                    key = f"{family.name}[{sample.labels[label]}]"
                    totals[key] = totals.get(key, 0.0) + sample.value
    return totals


def scrape(endpoint: Endpoint, timeout_s: float = SCRAPE_TIMEOUT_S) -> dict[str, float] | None:
    """The server's counters, or None when it has no /metrics (an endpoint that is not vLLM)."""
    request = urllib.request.Request(endpoint.url("/metrics"), headers=endpoint.headers())
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            text = response.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError, ValueError):
        return None
    try:
        return counter_totals(text)
    except ValueError:
        return None


def server_block_size(endpoint: Endpoint) -> int | None:
    """The KV block (tokens) the server caches prefixes in, as its /metrics says (vllm:cache_config_info)."""
    counters = scrape(endpoint)
    value = (counters or {}).get("vllm:cache_config_info:block_size")
    return int(value) if value else None
