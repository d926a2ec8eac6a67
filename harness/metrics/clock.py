"""The client's clock against the server's: what a measured window's requests took by vLLM's own histograms.

vLLM times every request itself, from its arrival at the server to its first token (`vllm:time_to_first_token_
seconds`) and to its end (`vllm:e2e_request_latency_seconds`), and the time it waited to be scheduled
(`vllm:request_queue_time_seconds`). Their sums and counts, scraped just before and just after a measured window
(the warm-up is over by then: its requests finished before the window began), give the server's means over the
window's requests. The client's mean minus the server's is the **client overhead**: the connection, the HTTP and
SSE layers on both sides and the client's own parsing, everything the engine's clock does not see. A case whose
TTFT overhead exceeds `share` of the client's mean TTFT is flagged: its latencies say more about the path than
about the engine. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping

from harness.metric_names import MEAN_E2EL_MS, MEAN_TTFT_MS

TTFT = "vllm:time_to_first_token_seconds"
E2E = "vllm:e2e_request_latency_seconds"
QUEUE = "vllm:request_queue_time_seconds"


def _mean_ms(before: Mapping[str, float], after: Mapping[str, float], name: str) -> tuple[float | None, float]:
    count = after.get(f"{name}:count", 0.0) - before.get(f"{name}:count", 0.0)
    total = after.get(f"{name}:sum", 0.0) - before.get(f"{name}:sum", 0.0)
    return (1000.0 * total / count if count > 0 else None), count


def server_clock(
    before: Mapping[str, float], after: Mapping[str, float], client: Mapping[str, object], completed: int, share: float
) -> dict[str, object]:
    """The server's means over the window, the client's overhead on each, and whether the window is flagged.
    `client` holds the window's metrics (mean_ttft_ms, mean_e2el_ms); `completed` its completed requests."""
    ttft, counted = _mean_ms(before, after, TTFT)
    e2e, _ = _mean_ms(before, after, E2E)
    queue, _ = _mean_ms(before, after, QUEUE)
    if ttft is None:
        return {"server_requests": 0, "flag": None, "message": "the server exports no TTFT histogram"}
    client_ttft, client_e2e = client.get(MEAN_TTFT_MS), client.get(MEAN_E2EL_MS)
    ttft_overhead = client_ttft - ttft if isinstance(client_ttft, int | float) else None
    e2e_overhead = client_e2e - e2e if isinstance(client_e2e, int | float) and e2e is not None else None
    problems = []
    if round(counted) != completed:
        problems.append(
            f"the server counted {counted:.0f} requests in the window, the client completed {completed} "
            "(another client, or requests outside the window): the means are not the same requests'"
        )
    if ttft_overhead is not None and isinstance(client_ttft, int | float) and ttft_overhead > share * client_ttft:
        problems.append(
            f"the client's mean TTFT is {ttft_overhead:.1f} ms above the server's ({ttft:.1f} ms): more than "
            f"{share:.0%} of the {client_ttft:.1f} ms it measured is outside the engine"
        )
    return {
        "server_requests": round(counted),
        "server_mean_ttft_ms": ttft,
        "server_mean_e2el_ms": e2e,
        "server_mean_queue_ms": queue,
        "ttft_overhead_ms": ttft_overhead,
        "e2el_overhead_ms": e2e_overhead,
        "max_overhead_share": share,
        "flag": bool(problems),
        "message": "; ".join(problems) or "the client's clock agrees with the server's",
    }
