"""The two load loops: closed (a fixed number of requests in flight) and open (requests sent on a schedule).

Both take the request function, the clock and the sleep as parameters, so tests drive them with a scripted
clock and a fake sender. Both have an overall deadline: when it passes, requests in flight are cancelled and
recorded as `deadline` failures, requests not yet sent as `not_sent`; what finished is kept.
Results come back in payload order.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.client.openai import RequestRecord

Payload = dict[str, Any]
Send = Callable[[Payload], Awaitable[RequestRecord]]


@dataclass(frozen=True)
class LoopClock:
    """Where a loop reads the time and how it waits; tests pass scripted ones."""

    now: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep)


class _Slots:
    """Records by index, with the failure to record when a request is cut short."""

    def __init__(self, count: int) -> None:
        self.records: list[RequestRecord | None] = [None] * count

    def cut(self, index: int, scheduled: float | None, released: float | None, sent: float | None) -> None:
        if self.records[index] is None:
            error = "not_sent" if sent is None else "deadline"
            detail = "the run's deadline passed " + ("before it was sent" if sent is None else "while it ran")
            self.records[index] = RequestRecord(
                sent=sent or 0.0, scheduled=scheduled, released=released, error=error, error_detail=detail
            )

    def done(self) -> list[RequestRecord]:
        assert all(r is not None for r in self.records)
        return [r for r in self.records if r is not None]


async def _until_deadline(tasks: list[asyncio.Task[None]], deadline_s: float) -> None:
    _, pending = await asyncio.wait(tasks, timeout=deadline_s)
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for task in tasks:  # a bug inside a task must surface, not vanish
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


async def closed_loop(
    send: Send, payloads: Sequence[Payload], concurrency: int, deadline_s: float, clock: LoopClock = LoopClock()
) -> list[RequestRecord]:
    """Keep exactly `concurrency` requests in flight (fewer only at the end) until every payload is done.

    Each worker sends its next request as soon as its previous one ended; that moment is the request's
    scheduled time, so schedule lag measures the client's own turnaround.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    slots = _Slots(len(payloads))
    queue = iter(range(len(payloads)))

    async def worker() -> None:
        due = clock.now()
        for index in queue:
            released = sent = None
            try:
                released = clock.now()
                sent = released
                record = await send(payloads[index])
                record.scheduled, record.released = due, released
                slots.records[index] = record
                due = clock.now()
            except asyncio.CancelledError:
                slots.cut(index, due, released, sent)
                for rest in queue:
                    slots.cut(rest, None, None, None)
                raise

    workers = [asyncio.create_task(worker()) for _ in range(min(concurrency, len(payloads)))]
    await _until_deadline(workers, deadline_s)
    for index in range(len(payloads)):
        slots.cut(index, None, None, None)
    return slots.done()


async def open_loop(
    send: Send,
    payloads: Sequence[Payload],
    offsets: Sequence[float],
    deadline_s: float,
    max_concurrency: int | None = None,
    clock: LoopClock = LoopClock(),
) -> list[RequestRecord]:
    """Send payload i at `offsets[i]` seconds after the start, whatever the server's state (open loop).

    With `max_concurrency`, a due request waits for a free slot; that wait is its queue time.
    """
    if len(offsets) != len(payloads):
        raise ValueError("one offset per payload")
    slots = _Slots(len(payloads))
    limit = asyncio.Semaphore(max_concurrency) if max_concurrency else None
    start = clock.now()

    async def one(index: int) -> None:
        scheduled = start + offsets[index]
        released = sent = None
        try:
            delay = scheduled - clock.now()
            if delay > 0:
                await clock.sleep(delay)
            released = clock.now()
            if limit is None:
                sent = released
                record = await send(payloads[index])
            else:
                async with limit:
                    sent = clock.now()
                    record = await send(payloads[index])
            record.scheduled, record.released = scheduled, released
            slots.records[index] = record
        except asyncio.CancelledError:
            slots.cut(index, scheduled, released, sent)
            raise

    tasks = [asyncio.create_task(one(i)) for i in range(len(payloads))]
    await _until_deadline(tasks, deadline_s)
    return slots.done()
