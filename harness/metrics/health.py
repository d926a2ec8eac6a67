"""The client's own health: did the load generator keep to its schedule?

A run whose client fell behind measures the client, not the server; it is reported invalid, not slow.
Schedule lag is `released - scheduled` (the time between a request coming due and the client getting to it);
waiting for a concurrency slot afterwards is queue time, a property of the workload, not a client fault.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from harness.client.openai import RequestRecord
from harness.config.suites import LoadSpec
from harness.metrics.serving import bunched_fraction
from harness.metrics.stats import describe, percentile


@dataclass(frozen=True)
class ClientLimits:
    """When a run counts as invalid: p99 lag above `max_p99_lag_ms`, or a send rate under `min_rate_fraction`."""

    max_p99_lag_ms: float = LoadSpec.model_fields["max_p99_lag_ms"].default
    min_rate_fraction: float = LoadSpec.model_fields["min_rate_fraction"].default
    max_ttft_overhead: float = LoadSpec.model_fields["max_ttft_overhead"].default  # a flag, not invalid


@dataclass(frozen=True)
class ClientHealth:
    valid: bool
    reasons: tuple[str, ...] = ()
    numbers: dict[str, float | None] = field(default_factory=dict)


def lags(records: Sequence[RequestRecord]) -> list[float]:
    return [r.released - r.scheduled for r in records if r.released is not None and r.scheduled is not None]


def queue_times(records: Sequence[RequestRecord]) -> list[float]:
    return [r.sent - r.released for r in records if r.released is not None and r.error != "not_sent"]


def send_rate(records: Sequence[RequestRecord]) -> float | None:
    """Requests released per second over the span of releases."""
    times = sorted(r.released for r in records if r.released is not None)
    if len(times) < 2 or times[-1] <= times[0]:
        return None
    return (len(times) - 1) / (times[-1] - times[0])


def client_health(
    records: Sequence[RequestRecord], scheduled_rate: float | None, limits: ClientLimits = ClientLimits()
) -> ClientHealth:
    """Judge the client. `scheduled_rate` is the rate the schedule asked for (None: closed loop or all at once).

    The achieved rate is compared with the schedule's own realised rate, not the nominal one, so the randomness
    of a short Poisson schedule is not mistaken for a slow client.
    """
    lag = lags(records)
    numbers: dict[str, float | None] = {
        **describe(lag, "schedule_lag"),
        **describe(queue_times(records), "queue_time"),
        "scheduled_rate": scheduled_rate,
        "achieved_send_rate": send_rate(records),
        "bunched_event_fraction": bunched_fraction(records),
    }
    reasons: list[str] = []
    p99 = percentile(lag, 99)
    if p99 is not None and p99 * 1000.0 > limits.max_p99_lag_ms:
        reasons.append(f"p99 schedule lag {p99 * 1000.0:.1f} ms is over the limit of {limits.max_p99_lag_ms} ms")
    achieved = numbers["achieved_send_rate"]
    if scheduled_rate is not None and achieved is not None and achieved < limits.min_rate_fraction * scheduled_rate:
        reasons.append(
            f"the client sent {achieved:.2f} req/s, under {limits.min_rate_fraction:.0%} of the scheduled "
            f"{scheduled_rate:.2f} req/s"
        )
    return ClientHealth(not reasons, tuple(reasons), numbers)
