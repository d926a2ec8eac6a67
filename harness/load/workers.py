"""A load client past one core: one case's requests sharded over worker processes, one global schedule.

One asyncio process holds about 2,000 requests/s and 30,000 streamed events/s on one core
(tests/benchmarks/test_client_ceiling.py); a large deployment with long streams needs more. With `workers` > 1
the case's requests are dealt round-robin in arrival order to worker processes, each pinned to a core of its own
(`client-cpus`, in turn):

- **Open loop**: the schedule is computed once, here; worker w sends arrivals w, w + N, w + 2N... at their global
  times from one shared start (CLOCK_MONOTONIC is one clock for every process), so the aggregate is exactly the
  asked distribution. A concurrency cap is split between the workers (a global cap cannot be shared across
  processes without a round trip per request).
- **Closed loop**: the concurrency is split between the workers (at most one worker per request in flight).

Each worker returns its records; they are merged back in request order, and the client's self-check is made per
worker and over all of them (harness.bench.execute). The API key crosses to the workers through a pipe, never a
command line, environment or file. Every worker is stopped on every exit path (and dies with the harness).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from harness.client.http import HTTPClient
from harness.client.openai import RequestRecord, Route, send_request
from harness.errors import HarnessError
from harness.load.loops import LoopShape, Payload, frozen_gc
from harness.runtime.process import die_with_parent
from harness.server.endpoint import Endpoint

READY_TIMEOUT_S = 60.0  # a worker process imports the client and connects its pipe
START_MARGIN_S = 0.05  # the shared start is set this far ahead, so every worker is waiting for it
COLLECT_MARGIN_S = 30.0  # beyond the case deadline, for the records to cross the pipe


class WorkerFailed(HarnessError):
    """A load worker process died or did not answer in time; the case has no complete record."""


@dataclass(frozen=True)
class Shard:
    """What one worker sends: its requests, their part of the loop, where, and on which core."""

    endpoint: Endpoint
    route: Route
    request_timeout_s: float
    deadline_s: float
    loop: LoopShape
    payloads: list[Payload]
    cpu: int | None = None


@dataclass
class Sharded:
    """The merged records (request order) and which requests each worker sent."""

    records: list[RequestRecord]
    parts: list[list[int]] = field(default_factory=list)


def parts_of(count: int, workers: int, limit: int | None) -> list[list[int]]:
    """Request indices per worker, round-robin in arrival order; no more workers than requests (or than the
    concurrency, which each worker needs a share of)."""
    used = max(1, min(workers, count, limit or workers))
    return [list(range(w, count, used)) for w in range(used)]


def share_of(limit: int, worker: int, workers: int) -> int:
    """Worker `worker`'s part of a concurrency `limit` split over `workers` (the first ones take the remainder)."""
    return limit // workers + (1 if worker < limit % workers else 0)


async def _send_all(shard: Shard, start: float) -> list[RequestRecord]:
    async with HTTPClient(shard.endpoint.base_url, shard.request_timeout_s) as client:

        async def send(body: Payload) -> RequestRecord:
            return await send_request(client, shard.endpoint, shard.route, body, shard.request_timeout_s)

        return await shard.loop.run(send, shard.payloads, shard.deadline_s, start)


def _worker(conn: Connection) -> None:  # pragma: no cover - runs in the worker process (tested end to end)
    shard: Shard = conn.recv()
    if shard.cpu is not None:
        os.sched_setaffinity(0, {shard.cpu})
    conn.send("ready")
    start: float = conn.recv()
    with frozen_gc():
        records = asyncio.run(_send_all(shard, start))
    conn.send(records)


def _spawn(w: int) -> tuple[subprocess.Popen[bytes], Connection]:
    """A worker process (`python -m harness.load.workers FD`) and our end of its socket pair. A process of our
    own, not multiprocessing's: spawning through multiprocessing re-runs the caller's main script."""
    ours, theirs = socket.socketpair()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "harness.load.workers", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
    finally:
        theirs.close()
    return process, Connection(ours.detach())


def run_sharded(
    endpoint: Endpoint,
    route: Route,
    request_timeout_s: float,
    deadline_s: float,
    loop: LoopShape,
    payloads: list[Payload],
    workers: int,
    cpus: tuple[int, ...] | None = None,
) -> Sharded:
    """Send `payloads` with `loop` from `workers` processes; every process is gone when this returns or raises."""
    parts = parts_of(len(payloads), workers, loop.limit)
    started: list[tuple[subprocess.Popen[bytes], Connection]] = []
    try:
        for w, indices in enumerate(parts):
            share = share_of(loop.limit, w, len(parts)) if loop.limit else 0
            shard = Shard(
                endpoint,
                route,
                request_timeout_s,
                deadline_s,
                loop.part(indices, share),
                [payloads[i] for i in indices],
                cpus[w % len(cpus)] if cpus else None,
            )
            process, conn = _spawn(w)
            started.append((process, conn))
            conn.send(shard)
        for w, (process, conn) in enumerate(started):
            _expect(conn, process, w, READY_TIMEOUT_S, "start")
        start = time.monotonic() + START_MARGIN_S
        for _, conn in started:
            conn.send(start)
        merged: list[RequestRecord | None] = [None] * len(payloads)
        ends = start + deadline_s + COLLECT_MARGIN_S
        for w, (process, conn) in enumerate(started):
            records = _expect(conn, process, w, max(0.0, ends - time.monotonic()), "finish its requests")
            for index, record in zip(parts[w], records, strict=True):
                merged[index] = record
        return Sharded([r for r in merged if r is not None], parts)
    finally:
        for process, conn in started:
            conn.close()
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)


def _expect(conn: Connection, process: subprocess.Popen[bytes], worker: int, timeout_s: float, what: str) -> Any:
    if not conn.poll(timeout_s):
        raise WorkerFailed(f"load worker {worker} did not {what} within {timeout_s:.0f} s")
    try:
        return conn.recv()
    except (EOFError, OSError) as exc:
        try:
            code = process.wait(5)
        except subprocess.TimeoutExpired:
            code = None
        raise WorkerFailed(f"load worker {worker} died before it could {what} (exit code {code})") from exc


if __name__ == "__main__":  # a worker: python -m harness.load.workers FD
    die_with_parent()
    _worker(Connection(int(sys.argv[1])))
