"""A case measured under the protocol (harness.bench.protocol): a timed warm-up at the case's concurrency, a
window sized to `min-requests` / `min-seconds`, `repeats` measurements with fresh prompts, each one run by
harness.bench.execute; the case's result holds every repeat's metrics, and a case in progress is written between
repeats. Also the profiled window, measured after the case with prompts no measurement of it used.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from harness.bench.cases import DynamicCase, LoadSettings, StaticCase
from harness.bench.execute import run_dynamic, run_static
from harness.bench.protocol import (
    CALIBRATIONS,
    WARMUP,
    dataset_slice,
    protocol_config,
    size_window,
    static_case_with,
    stream,
    wall_clock,
)
from harness.load.samples import Sample
from harness.load.synthetic import random_samples
from harness.load.tokens import Tokens
from harness.results.case import CaseResult
from harness.server.endpoint import Endpoint

Progress = Callable[[CaseResult], None]  # told the case so far after each repeat but the last (written at once)


def repeated(measure: Callable[[int], CaseResult], times: int, progress: Progress | None = None) -> CaseResult:
    """Measure a case `times` times (`measure(repeat)`): the last measurement's result, with every measurement's
    metrics in `repeats`.

    An invalid repeat (the client fell behind) makes the whole case invalid: its reasons are kept, numbered. After
    each repeat but the last, `progress` gets the case so far, marked `partial`, so an interrupted case keeps the
    repeats it measured.
    """
    results: list[CaseResult] = []
    for repeat in range(times):
        results.append(measure(repeat))
        if progress is not None and repeat < times - 1:
            progress(_combined(results, times))
    return _combined(results, times)


def _combined(results: list[CaseResult], times: int) -> CaseResult:
    last = dataclasses.replace(results[-1], config=dict(results[-1].config), checks=dict(results[-1].checks))
    # every repeat's window (monotonic seconds), where the report marks telemetry and sums energy
    last.checks["windows"] = [r.checks.get("client", {}).get("window") for r in results]
    if times > 1:
        last.repeats = [r.metrics for r in results]
        last.invalid_reasons = [
            f"repeat {i}: {reason}" for i, r in enumerate(results, start=1) for reason in r.invalid_reasons
        ]
    if len(results) < times:
        last.partial = f"{len(results)} of {times} repeats measured"
    return last


Workload = Callable[[np.random.Generator, int], list[Sample]]  # (the measurement's generator, count) -> prompts


def measure_static(
    endpoint: Endpoint,
    tokens: Tokens,
    case: StaticCase,
    settings: LoadSettings,
    repeats: int,
    workload: Workload | None = None,
    suite: str = "serving.static",
    progress: Progress | None = None,
) -> CaseResult:
    """A closed-loop case under the measurement protocol (harness.bench.protocol): a timed warm-up at the case's
    concurrency, a window sized to `min-requests` / `min-seconds`, `repeats` measurements with fresh prompts."""

    def make(rng: np.random.Generator, count: int) -> list[Sample]:
        if workload is not None:
            return workload(rng, count)
        return random_samples(tokens, count, case.prompt_tokens, case.output_tokens, rng)

    def run(samples: list[Sample]) -> CaseResult:
        return run_static(endpoint, tokens, static_case_with(case, len(samples)), settings, samples, suite)

    def unmeasured(stage: int, count: int) -> float:
        started = wall_clock()
        run(make(stream(settings.seed, suite, case.id, stage), count))
        return wall_clock() - started

    per_repeat, pace = size_window(unmeasured, case.num_requests, case.parallel, settings)
    protocol = protocol_config(settings, pace, per_repeat)

    def measured(repeat: int) -> CaseResult:
        result = run(make(stream(settings.seed, suite, case.id, repeat), per_repeat))
        result.config.update(protocol)
        return result

    return repeated(measured, repeats, progress)


def measure_dynamic(
    endpoint: Endpoint,
    tokens: Tokens,
    case: DynamicCase,
    settings: LoadSettings,
    repeats: int,
    records: Sequence[Sample],
    dataset: str,
    case_index: int = 0,
    progress: Progress | None = None,
) -> CaseResult:
    """An open-loop case under the measurement protocol: a warm-up (closed loop at the case's concurrency cap, else
    4 in flight) and a calibration window on the case's own schedule, then `repeats` measurements, each on its own
    slice of the dataset."""
    slots = 1 + CALIBRATIONS + repeats  # the warm-up's slice, each calibration's, one per repeat
    parallel = case.max_concurrency or 4
    reused = False

    def take(slot: int, count: int) -> list[Sample]:
        nonlocal reused
        picked, wrapped = dataset_slice(records, count, settings.seed, case_index * slots + slot)
        reused = reused or wrapped
        return picked

    def run(slot: int, count: int) -> CaseResult:
        return run_dynamic(endpoint, tokens, case, settings, take(slot, count), dataset)

    def unmeasured(stage: int, count: int) -> float:
        started = wall_clock()
        slot = -stage - 1  # WARMUP -> 0, the calibrations -> 1, 2
        if stage == WARMUP:
            run_static(endpoint, tokens, StaticCase(parallel, 0, 0, 1), settings, take(slot, count), "serving.dynamic")
        else:
            run(slot, count)
        return wall_clock() - started

    per_repeat, pace = size_window(unmeasured, case.num_prompts, 1, settings, case.request_rate)
    protocol = protocol_config(settings, pace, per_repeat)

    def measured(repeat: int) -> CaseResult:
        result = run(1 + CALIBRATIONS + repeat, per_repeat)
        result.config.update(protocol, prompts_reused=reused)
        return result

    return repeated(measured, repeats, progress)


PROFILED = 1000  # the repeat index of a profiled window: prompts no measurement of the case uses


def profiled_static_window(
    endpoint: Endpoint, tokens: Tokens, case: StaticCase, settings: LoadSettings, measured: CaseResult
) -> CaseResult:
    """One more window of a measured static case, as long as its repeats, on prompts of its own (profiled)."""
    count = int(measured.config.get("requests_per_repeat") or case.num_requests)
    rng = stream(settings.seed, measured.suite, case.id, PROFILED)
    samples = random_samples(tokens, count, case.prompt_tokens, case.output_tokens, rng)
    return run_static(endpoint, tokens, static_case_with(case, count), settings, samples, measured.suite)


def profiled_dynamic_window(
    endpoint: Endpoint,
    tokens: Tokens,
    case: DynamicCase,
    settings: LoadSettings,
    records: Sequence[Sample],
    dataset: str,
    measured: CaseResult,
) -> CaseResult:
    """One more window of a measured dynamic case on its own slice of the dataset (profiled)."""
    count = int(measured.config.get("requests_per_repeat") or case.num_prompts)
    samples, _ = dataset_slice(records, count, settings.seed, PROFILED)
    return run_dynamic(endpoint, tokens, case, settings, samples, dataset)
