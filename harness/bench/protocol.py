"""The measurement protocol: what makes one case's number mean something.

Every serving case (static, dynamic, prefix, multimodal; the suites and `llmqual bench` alike) is measured the same
way:

1. **Warm-up and calibration.** `warmup-requests` requests at the case's concurrency, not measured: the first
   requests after a server starts, or after the workload changes, pay for compilation, allocation and cold caches.
   Then, when a repeat must last `min-seconds`, an unmeasured window of the size the warm-up's pace suggests; if
   it ends before `min-seconds` (a warm-up is slower than the steady state), the window is resized from its pace
   with a 10% margin and tried once more.
2. **Fresh inputs.** Every warm-up and every repeat gets prompts it alone uses: random prompts are drawn from a
   generator seeded by (seed, workload, case, repeat), dataset records are taken from disjoint slices of a seeded
   permutation. No measurement is served from a prefix cache it did not ask for; only the prefix workload shares a
   prefix, inside one repeat, on purpose.
3. **A window long enough to mean something.** A repeat sends at least `min-requests` requests and lasts at least
   `min-seconds` (estimated from the warm-up's pace): a half-second repeat measures scheduling luck.
4. **Repeats.** The case is measured `gates.repeats` times; the gate judges their spread.

Pure except `measure_static` / `warm_up`, which send requests.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable, Sequence

import numpy as np

from harness.bench.cases import LoadSettings, StaticCase
from harness.load.samples import Sample

WARMUP = -1  # the repeat index of the warm-up: its own random stream, never a measured repeat's
CALIBRATION = -2  # the repeat index of the calibration (a second warm-up, one window long)
CALIBRATIONS = 2  # calibration windows at most: the second checks the size the first suggested


def stream(seed: int, workload: str, case_id: str, repeat: int) -> np.random.Generator:
    """The random generator of one measurement: the same (seed, workload, case, repeat) gives the same prompts,
    any other gives different ones."""
    tag = zlib.crc32(f"{workload}/{case_id}".encode())
    return np.random.default_rng([seed, tag, repeat + 16])  # the unmeasured stages are small negative numbers


def requests_per_repeat(
    asked: int, multiple: int, settings: LoadSettings, seconds_per_request: float | None, rate: float | None = None
) -> int:
    """How many requests one repeat sends: at least `asked` and `min-requests`, enough to last `min-seconds`.

    The duration is estimated from the warm-up's pace (`seconds_per_request` at the case's concurrency) and, for an
    open loop, from the arrival rate (a schedule cannot finish before its last arrival). Rounded up to a
    `multiple` (a closed loop sends whole waves of its concurrency).
    """
    needed = max(asked, settings.min_requests, 1)
    if settings.min_seconds > 0:
        paces = [p for p in (seconds_per_request, None if rate is None or math.isinf(rate) else 1.0 / rate) if p]
        if paces:
            needed = max(needed, math.ceil(settings.min_seconds / max(paces)))
    return math.ceil(needed / multiple) * multiple


def dataset_slice(records: Sequence[Sample], count: int, seed: int, slot: int) -> tuple[list[Sample], bool]:
    """`count` records for measurement `slot` from a seeded permutation of `records`: slots take disjoint slices
    while the dataset lasts; after that they wrap around (True: some prompts were sent before in this run)."""
    if not records:
        return [], False
    order = np.random.default_rng([seed, len(records)]).permutation(len(records))
    start = slot * count
    picked = [records[int(order[(start + i) % len(records)])] for i in range(count)]
    return picked, start + count > len(records)


def size_window(
    send: Callable[[int, int], float], asked: int, multiple: int, settings: LoadSettings, rate: float | None = None
) -> tuple[int, float | None]:
    """(requests per repeat, seconds per request at steady state) after the warm-up and the calibration.

    `send(stage, count)` sends `count` unmeasured requests (stage WARMUP, CALIBRATION, CALIBRATION - 1: each with
    prompts of its own) and
    returns the seconds it took.
    """
    pace = None
    if settings.warmup_requests > 0:
        count = math.ceil(settings.warmup_requests / multiple) * multiple
        pace = send(WARMUP, count) / count
    per_repeat = requests_per_repeat(asked, multiple, settings, pace, rate)
    paced_by_rate = rate is not None and not math.isinf(rate) and per_repeat / rate >= settings.min_seconds
    if settings.min_seconds > 0 and pace is not None and not paced_by_rate:  # the schedule alone is long enough
        for attempt in range(CALIBRATIONS):
            took = send(CALIBRATION - attempt, per_repeat)  # each window its own prompts: no cache hits
            pace = took / per_repeat
            if took >= settings.min_seconds:
                break
            # Sized from this window's steady pace, with a margin: the next window (or the repeats) last long enough.
            per_repeat = requests_per_repeat(asked, multiple, settings, pace / 1.1, rate)
    return per_repeat, pace


def protocol_config(settings: LoadSettings, seconds_per_request: float | None, per_repeat: int) -> dict[str, object]:
    """What a case records about how it was measured."""
    return {
        "warmup_requests": settings.warmup_requests,
        "warmup_s_per_request": None if seconds_per_request is None else round(seconds_per_request, 6),
        "min_requests": settings.min_requests,
        "min_seconds": settings.min_seconds,
        "requests_per_repeat": per_repeat,
    }


def wall_clock() -> float:
    return time.monotonic()


def static_case_with(case: StaticCase, requests: int) -> StaticCase:
    """`case` sending `requests` in all (a whole number of waves of its concurrency)."""
    return StaticCase(case.parallel, case.prompt_tokens, case.output_tokens, max(1, requests // case.parallel))
