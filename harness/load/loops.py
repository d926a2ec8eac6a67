"""The two load loops: closed (a fixed number of requests in flight) and open (requests sent on a schedule).

Both take the request function, the clock and the sleep as parameters, so tests drive them with a scripted
clock and a fake sender. Both have an overall deadline: when it passes, requests in flight are cancelled and
recorded as `deadline` failures, requests not yet sent as `not_sent`; what finished is kept.
Results come back in payload order.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

from harness.client.openai import RequestRecord
from harness.runtime.timerfd import loop_timer

Payload = dict[str, Any]
Send = Callable[[Payload], Awaitable[RequestRecord]]


@dataclass(frozen=True)
class LoopClock:
    """Where a loop reads the time and how it waits for a due time; tests pass scripted ones.

    `sleep_until` None is the real one: a kernel timer of the running loop (harness.runtime.timerfd), one wake-up
    per due time, to within microseconds. asyncio's own timers wake up to a millisecond late, which alone would put
    the schedule lag at the limit the client is held to; the ways around that cost CPU taken from the engine the
    client shares its cores with: a busy loop for the last 2 ms (half a core at 300 requests per second) or a pacer
    thread (three wake-ups per request: the loop's early timer, the thread, the loop again).
    """

    now: Callable[[], float] = time.monotonic
    sleep_until: Callable[[float], Awaitable[None]] | None = None


@contextmanager
def frozen_gc() -> Iterator[None]:
    """Move what exists now out of the garbage collector's sight for a measurement (as `vllm bench serve` does):
    a full collection of a large heap in the middle of a run stalls the loop for tens of milliseconds."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


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


async def _ended(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel what still runs and wait until every task has ended."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _until_deadline(tasks: list[asyncio.Task[None]], deadline_s: float) -> None:
    try:
        _, pending = await asyncio.wait(tasks, timeout=deadline_s)
    except asyncio.CancelledError:  # Ctrl-C: the requests end here, before the session they use is closed
        await _ended(tasks)
        raise
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
    start: float | None = None,
) -> list[RequestRecord]:
    """Send payload i at `offsets[i]` seconds after the start, whatever the server's state (open loop).

    `start` (on `clock`) is now by default; a worker of a sharded client gets the shared start of the whole
    schedule (harness.load.workers), so its arrivals keep their places in the global one.

    One dispatcher walks the schedule and starts each request when it is due, so the cost of waiting does not
    grow with the number of requests. With `max_concurrency`, a due request waits for a free slot; that wait is
    its queue time.
    """
    if len(offsets) != len(payloads):
        raise ValueError("one offset per payload")
    if any(b < a for a, b in itertools.pairwise(offsets)):
        raise ValueError("offsets must be in order")
    slots = _Slots(len(payloads))
    limit = asyncio.Semaphore(max_concurrency) if max_concurrency else None
    requests: list[asyncio.Task[None]] = []

    async def one(index: int, scheduled: float, released: float) -> None:
        sent = None
        try:
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

    began = clock.now() if start is None else start

    async def dispatch(sleep_until: Callable[[float], Awaitable[None]]) -> None:
        for index, offset in enumerate(offsets):
            await sleep_until(began + offset)  # returns at once, without yielding, for a request already due
            requests.append(asyncio.create_task(one(index, began + offset, clock.now())))

    with nullcontext(clock.sleep_until) if clock.sleep_until else loop_timer() as sleep_until:
        return await _run_open(dispatch(sleep_until), requests, slots, deadline_s, clock)


async def _run_open(
    dispatching: Coroutine[Any, Any, None],
    requests: list[asyncio.Task[None]],
    slots: _Slots,
    deadline_s: float,
    clock: LoopClock,
) -> list[RequestRecord]:
    dispatcher = asyncio.create_task(dispatching)
    deadline = clock.now() + deadline_s
    try:
        _, pending = await asyncio.wait([dispatcher], timeout=deadline_s)
    except asyncio.CancelledError:  # Ctrl-C while requests are still being sent: end them all first
        await _ended([dispatcher, *requests])
        raise
    if not pending:
        await _until_deadline(requests, max(0.0, deadline - clock.now()))
    else:
        dispatcher.cancel()
        await asyncio.gather(dispatcher, return_exceptions=True)
        await _until_deadline(requests, 0.0)
    if not dispatcher.cancelled() and dispatcher.exception() is not None:
        raise dispatcher.exception()  # type: ignore[misc]
    for index in range(len(slots.records)):
        slots.cut(index, None, None, None)
    return slots.done()


@dataclass(frozen=True)
class OpenLoop:
    """An open loop's schedule, as data: it can be run here or split over worker processes."""

    offsets: tuple[float, ...]
    max_concurrency: int | None = None

    async def run(
        self, send: Send, payloads: Sequence[Payload], deadline_s: float, start: float | None = None
    ) -> list[RequestRecord]:
        return await open_loop(send, payloads, self.offsets, deadline_s, self.max_concurrency, LoopClock(), start)

    def part(self, indices: Sequence[int], share: int) -> OpenLoop:
        """The arrivals at `indices` of the global schedule; a concurrency cap split into `share` (its part)."""
        return OpenLoop(tuple(self.offsets[i] for i in indices), share if self.max_concurrency else None)

    @property
    def limit(self) -> int | None:
        return self.max_concurrency


@dataclass(frozen=True)
class ClosedLoop:
    """A closed loop's concurrency, as data."""

    concurrency: int

    async def run(
        self, send: Send, payloads: Sequence[Payload], deadline_s: float, start: float | None = None
    ) -> list[RequestRecord]:
        return await closed_loop(send, payloads, self.concurrency, deadline_s)

    def part(self, indices: Sequence[int], share: int) -> ClosedLoop:
        del indices
        return ClosedLoop(share)

    @property
    def limit(self) -> int | None:
        return self.concurrency


LoopShape = OpenLoop | ClosedLoop
