"""The measurement protocol's pure parts: fresh prompts, disjoint dataset slices, the window's size."""

from __future__ import annotations

import pytest

from harness.bench.cases import LoadSettings
from harness.bench.protocol import CALIBRATION, WARMUP, dataset_slice, requests_per_repeat, size_window, stream
from harness.load.samples import Sample


def test_every_measurement_has_its_own_stream() -> None:
    draws = {
        (workload, case, repeat): tuple(stream(0, workload, case, repeat).integers(0, 2**31, 4))
        for workload in ("serving.static", "serving.prefix")
        for case in ("p1-in64-out32", "p16-in64-out32")
        for repeat in (WARMUP, CALIBRATION, CALIBRATION - 1, 0, 1, 2)
    }
    assert len(set(draws.values())) == len(draws), "two measurements would send the same prompts"
    again = tuple(stream(0, "serving.static", "p1-in64-out32", 1).integers(0, 2**31, 4))
    assert again == draws[("serving.static", "p1-in64-out32", 1)], "the same measurement is reproducible"


def records(n: int) -> list[Sample]:
    return [Sample(f"prompt {i}", 10, 5) for i in range(n)]


def test_dataset_slices_are_disjoint_while_the_dataset_lasts() -> None:
    data = records(100)
    slices = [dataset_slice(data, 20, seed=3, slot=s) for s in range(5)]
    prompts = [s.prompt for picked, _ in slices for s in picked]
    assert len(prompts) == len(set(prompts)) == 100
    assert not any(wrapped for _, wrapped in slices)
    picked, wrapped = dataset_slice(data, 20, seed=3, slot=5)
    assert wrapped, "a slot past the end wraps round and says so"
    assert len(picked) == 20


@pytest.mark.parametrize(
    ("asked", "multiple", "min_requests", "min_seconds", "pace", "rate", "expected"),
    [
        (32, 16, 0, 0.0, None, None, 32),  # nothing to extend
        (32, 16, 100, 0.0, None, None, 112),  # at least min-requests, whole waves
        (32, 16, 0, 3.0, 0.01, None, 304),  # 3 s at 10 ms a request: 300, whole waves of 16
        (64, 1, 0, 10.0, 0.001, 4.0, 64),  # an open loop at 4/s already lasts 16 s
        (16, 1, 0, 10.0, 0.001, 2.0, 20),  # 2/s: 20 arrivals for 10 s
        (16, 1, 0, 3.0, 0.01, float("inf"), 300),  # all at once: only the pace tells
    ],
)
def test_requests_per_repeat(
    asked: int,
    multiple: int,
    min_requests: int,
    min_seconds: float,
    pace: float | None,
    rate: float | None,
    expected: int,
) -> None:
    settings = LoadSettings(min_requests=min_requests, min_seconds=min_seconds)
    assert requests_per_repeat(asked, multiple, settings, pace, rate) == expected


def test_the_calibration_grows_a_window_that_ended_early() -> None:
    """The warm-up runs at 20 ms a request, the steady state at 5 ms: the window is sized from the calibration."""
    sent: list[tuple[int, int]] = []

    def send(stage: int, count: int) -> float:
        sent.append((stage, count))
        return count * (0.020 if stage == WARMUP else 0.005)

    settings = LoadSettings(warmup_requests=16, min_seconds=2.0)
    per_repeat, pace = size_window(send, asked=16, multiple=16, settings=settings)
    # 2 s / 20 ms = 100 -> 112 in waves of 16; that window lasts 0.56 s: resized from 5 ms with a 10% margin
    assert sent == [(WARMUP, 16), (CALIBRATION, 112), (CALIBRATION - 1, 448)]
    assert pace == pytest.approx(0.005)
    assert per_repeat * 0.005 >= 2.0, "the measured window lasts min-seconds at the steady pace"
    assert per_repeat % 16 == 0


def test_no_warm_up_no_calibration() -> None:
    def send(stage: int, count: int) -> float:
        raise AssertionError("nothing may be sent")

    assert size_window(send, 32, 16, LoadSettings(warmup_requests=0, min_seconds=3.0)) == (32, None)


def test_an_open_loop_long_enough_by_its_schedule_needs_no_calibration() -> None:
    sent: list[int] = []

    def send(stage: int, count: int) -> float:
        sent.append(stage)
        return count * 0.01

    settings = LoadSettings(warmup_requests=16, min_seconds=3.0)
    assert size_window(send, 32, 1, settings, rate=4.0)[0] == 32  # 8 s at 4 requests/s
    assert sent == [WARMUP], "only the warm-up: the arrivals alone last min-seconds"
