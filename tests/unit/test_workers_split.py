"""How a case's requests are dealt to load workers (harness.load.workers): pure."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from harness.load.loops import ClosedLoop, OpenLoop
from harness.load.workers import parts_of, share_of


@given(st.integers(0, 500), st.integers(1, 16), st.one_of(st.none(), st.integers(1, 64)))
def test_every_request_goes_to_exactly_one_worker_in_arrival_order(count: int, workers: int, limit: int | None) -> None:
    parts = parts_of(count, workers, limit)
    assert sorted(i for part in parts for i in part) == list(range(count))
    assert all(part == sorted(part) for part in parts)
    assert len(parts) <= max(1, min(workers, count, limit or workers))
    if limit:
        assert sum(share_of(limit, w, len(parts)) for w in range(len(parts))) == limit
        assert all(share_of(limit, w, len(parts)) >= 1 for w in range(len(parts)))


def test_a_workers_part_keeps_its_arrivals_global_times() -> None:
    schedule = OpenLoop((0.0, 0.1, 0.25, 0.3, 0.7), max_concurrency=5)
    parts = parts_of(5, 2, schedule.limit)
    assert parts == [[0, 2, 4], [1, 3]]
    assert schedule.part(parts[0], share_of(5, 0, 2)) == OpenLoop((0.0, 0.25, 0.7), 3)
    assert schedule.part(parts[1], share_of(5, 1, 2)) == OpenLoop((0.1, 0.3), 2)
    assert OpenLoop((0.0, 1.0)).part([1], 0) == OpenLoop((1.0,), None)
    assert ClosedLoop(16).part([0, 2], share_of(16, 0, 3)) == ClosedLoop(6)
    assert parts_of(10, 4, ClosedLoop(2).limit) == [[0, 2, 4, 6, 8], [1, 3, 5, 7, 9]], "one worker per slot at most"


def test_each_worker_is_judged_on_its_own_requests() -> None:
    from harness.bench.cases import LoadSettings
    from harness.bench.execute import _worker_health
    from harness.client.openai import RequestRecord

    def sent(at: float, lag: float) -> RequestRecord:
        return RequestRecord(sent=at + lag, scheduled=at, released=at + lag, content_times=[at + lag + 0.01])

    # Worker 0 keeps to its schedule; worker 1 sends every request 80 ms late (it fell behind).
    records = [sent(i * 0.01, 0.0 if i % 2 == 0 else 0.08) for i in range(100)]
    parts = [list(range(0, 100, 2)), list(range(1, 100, 2))]
    checks, reasons = _worker_health(records, parts, 100.0, LoadSettings())
    assert [c["valid"] for c in checks] == [True, False]
    assert [c["requests"] for c in checks] == [50, 50]
    assert len(reasons) == 1
    assert reasons[0].startswith("worker 1: p99 schedule lag 80.0 ms is over the limit")
