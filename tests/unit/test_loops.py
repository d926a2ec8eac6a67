"""Closed and open loops driven by a scripted clock and a fake sender: concurrency, timing, deadlines."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from dataclasses import dataclass, field

import pytest

from harness.client.openai import RequestRecord
from harness.load.loops import LoopClock, Payload, closed_loop, open_loop
from harness.runtime.timerfd import coarse_sleep_until, loop_timer


@dataclass
class ScriptedWorld:
    """Virtual time: `sleep` moves the clock to the earliest waiter; requests take `service_s` virtual seconds."""

    service_s: float = 1.0
    now: float = 0.0
    in_flight: int = 0
    peak: int = 0
    concurrency_at_send: list[int] = field(default_factory=list)
    sends: list[float] = field(default_factory=list)
    _wakeups: list[tuple[float, asyncio.Future[None]]] = field(default_factory=list)

    def clock(self) -> LoopClock:
        return LoopClock(now=lambda: self.now, sleep_until=self.sleep_until)

    async def sleep_until(self, due: float) -> None:
        if due > self.now:
            await self.sleep(due - self.now)

    async def sleep(self, delay: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._wakeups.append((self.now + delay, future))
        await future

    async def run_time(self) -> None:
        """The scheduler: whenever every task waits, advance virtual time to the next wake-up."""
        while True:
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            if not self._wakeups:
                await asyncio.sleep(0.001)
                continue
            self._wakeups.sort(key=lambda w: w[0])
            when, future = self._wakeups.pop(0)
            self.now = max(self.now, when)
            if not future.done():
                future.set_result(None)

    async def send(self, body: Payload) -> RequestRecord:
        record = RequestRecord(sent=self.now, status=200)
        self.sends.append(self.now)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        self.concurrency_at_send.append(self.in_flight)
        try:
            await self.sleep(body.get("service_s", self.service_s))
        finally:
            self.in_flight -= 1
        record.content_times = [self.now]
        return record


async def _with_world(world: ScriptedWorld, coro: object) -> list[RequestRecord]:
    timer = asyncio.create_task(world.run_time())
    try:
        return await coro  # type: ignore[misc, no-any-return]
    finally:
        timer.cancel()


def test_closed_loop_keeps_exactly_n_in_flight() -> None:
    world = ScriptedWorld()
    payloads: list[Payload] = [{"i": i} for i in range(12)]
    records = asyncio.run(_with_world(world, closed_loop(world.send, payloads, 4, 100.0, world.clock())))
    assert len(records) == 12
    assert all(r.ok for r in records)
    assert world.peak == 4
    assert world.concurrency_at_send == [1, 2, 3, 4] + [4] * 8, "each finished request is replaced at once"
    assert world.sends == [0.0] * 4 + [1.0] * 4 + [2.0] * 4
    assert all(r.released is not None and r.scheduled == r.released for r in records)


def test_open_loop_sends_on_schedule_regardless_of_the_server() -> None:
    world = ScriptedWorld(service_s=10.0)  # a slow server must not hold back an open loop
    offsets = [0.0, 0.5, 1.5, 4.0]
    records = asyncio.run(_with_world(world, open_loop(world.send, [{}] * 4, offsets, 100.0, None, world.clock())))
    assert world.sends == offsets
    assert [r.scheduled for r in records] == offsets
    assert all(r.released == r.scheduled for r in records), "no lag on a scripted clock"
    assert world.peak == 4


def test_open_loop_max_concurrency_queues_in_the_client() -> None:
    world = ScriptedWorld(service_s=2.0)
    records = asyncio.run(_with_world(world, open_loop(world.send, [{}] * 4, [0.0] * 4, 100.0, 2, world.clock())))
    assert world.peak == 2
    assert sorted(r.sent - (r.released or 0.0) for r in records) == [0.0, 0.0, 2.0, 2.0], "queue time"


def test_open_loop_deadline_cuts_the_run_and_keeps_what_finished() -> None:
    async def answers_first_only(body: Payload) -> RequestRecord:
        if body["i"] == 1:
            await asyncio.sleep(3600)
        return RequestRecord(sent=0.0, status=200, content_times=[0.0])

    payloads: list[Payload] = [{"i": 0}, {"i": 1}, {"i": 2}]
    records = asyncio.run(open_loop(answers_first_only, payloads, [0.0, 0.0, 3600.0], 0.1))
    assert [r.error for r in records] == [None, "deadline", "not_sent"]
    assert records[1].scheduled is not None, "a cut request keeps its schedule"


def test_closed_loop_deadline_marks_unsent_requests() -> None:
    async def never_answers(body: Payload) -> RequestRecord:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    records = asyncio.run(closed_loop(never_answers, [{}] * 5, 2, 0.05))
    assert [r.error for r in records] == ["deadline", "deadline", "not_sent", "not_sent", "not_sent"]


def test_a_bug_in_the_sender_is_raised_not_swallowed() -> None:
    async def broken(body: Payload) -> RequestRecord:
        raise RuntimeError("planted bug")

    with pytest.raises(RuntimeError, match="planted bug"):
        asyncio.run(closed_loop(broken, [{}] * 3, 2, 5.0))


def test_bad_concurrency_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        asyncio.run(closed_loop(lambda body: None, [{}], 0, 1.0))  # type: ignore[arg-type, return-value]


@pytest.mark.parametrize("loop", ["closed", "open"])
def test_a_cancelled_loop_ends_its_requests_before_it_returns(loop: str) -> None:
    """Ctrl-C cancels the loop while requests are in flight; their session closes as the cancellation unwinds,
    so a request still running after that printed 'Task exception was never retrieved ... Session is closed'.
    Every request must have ended when the cancellation leaves the loop."""
    started: list[asyncio.Task[object]] = []

    async def slow(body: Payload) -> RequestRecord:
        task = asyncio.current_task()
        assert task is not None
        started.append(task)
        await asyncio.sleep(30)
        return RequestRecord(sent=0.0, status=200)

    async def main() -> None:
        payloads: list[Payload] = [{}] * 4
        run = closed_loop(slow, payloads, 4, 60.0) if loop == "closed" else open_loop(slow, payloads, [0.0] * 4, 60.0)
        outer = asyncio.ensure_future(run)
        while len(started) < 4:
            await asyncio.sleep(0.001)
        outer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await outer
        assert all(task.done() for task in started), "a request outlived its loop"

    asyncio.run(main())


@pytest.mark.parametrize("sleep_until", ["timerfd", "coarse"])
def test_the_real_timers_never_return_before_the_due_time(sleep_until: str) -> None:
    """The kernel timer (and the loop's own, where there is no timerfd): never early, and the loop keeps running
    other tasks meanwhile (the ticker advances while the waits are in progress)."""
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    async def main() -> list[float]:
        running = asyncio.create_task(ticker())
        early = []
        with loop_timer() as kernel:
            wait = kernel if sleep_until == "timerfd" else coarse_sleep_until
            start = time.monotonic()
            for i in range(1, 41):
                due = start + i * 0.0025
                await wait(due)
                early.append(due - time.monotonic())
            await wait(start)  # a due time already past returns at once
        running.cancel()
        return early

    early = asyncio.run(main())
    assert max(early) <= 0.0, f"returned {max(early) * 1e6:.0f} us before a due time"
    assert ticks > 10  # the loop served the other task while it waited


def test_the_kernel_timer_is_later_than_due_by_less_than_the_loops_own_timer() -> None:
    """What the timerfd is for: the loop's own timer counts whole milliseconds (a wait of 1.3 ms ends about 2 ms
    on), the kernel timer does not. The two are interleaved, so a busy host delays both alike. Its descriptor is
    closed on exit."""

    async def main() -> tuple[list[float], list[float], int]:
        kernel_late: list[float] = []
        coarse_late: list[float] = []
        with loop_timer() as sleep_until:
            fd = sleep_until.__self__.fd  # type: ignore[attr-defined]
            for _ in range(40):
                for wait, late in ((sleep_until, kernel_late), (coarse_sleep_until, coarse_late)):
                    due = time.monotonic() + 0.0013
                    await wait(due)
                    late.append(time.monotonic() - due)
        return kernel_late, coarse_late, fd

    kernel_late, coarse_late, fd = asyncio.run(main())
    kernel, coarse = statistics.median(kernel_late), statistics.median(coarse_late)
    assert kernel < coarse, f"median lateness: kernel timer {kernel * 1e6:.0f} us, loop timer {coarse * 1e6:.0f} us"
    with pytest.raises(OSError, match="Bad file descriptor"):
        os.fstat(fd)
