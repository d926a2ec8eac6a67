"""How a diffusion case is measured, whichever engine makes the images (diffusers' pipeline in a worker process,
or a ComfyUI server): the order of its calls, their prompts, and what the calls' timings add up to.

A case makes `warmup-calls` calls that are not measured (the first call of a pipeline pays for lazy
initialisation: on the tiny Flux the first 64x64 call takes about twice as long as the next), then
`gates.repeats` windows of `calls` calls each. Every call has prompts no earlier call had, so nothing is served
from a cache the case did not ask for (ComfyUI caches every node whose inputs did not change). Per call, the
latency per image is the call's time divided by the images it made; per window, images/s is the window's images
over its time. A call that made other than `batch` images, or images of another size, makes the case invalid.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.config.diffusion import DiffusionSpec
from harness.diffusion.cases import DiffusionCase
from harness.metric_names import (
    IMAGES_PER_S,
    MAX_LATENCY_PER_IMAGE_MS,
    MEAN_LATENCY_PER_IMAGE_MS,
    MEDIAN_LATENCY_PER_IMAGE_MS,
    MIN_LATENCY_PER_IMAGE_MS,
    P90_LATENCY_PER_IMAGE_MS,
)
from harness.model.corpus import sentence


@dataclass(frozen=True)
class CallSlot:
    phase: str  # "warmup" or "measure"
    repeat: int  # the window it belongs to; -1 for warm-up
    prompts: tuple[str, ...]


@dataclass(frozen=True)
class Call:
    """What one call took and made."""

    phase: str
    repeat: int
    seconds: float
    images: int
    sizes: tuple[tuple[int, int], ...]  # (width, height) of each image
    server_seconds: float | None = None  # the engine's own account of the call, when it gives one (ComfyUI)
    cached_nodes: tuple[str, ...] = ()  # nodes the engine answered from its cache (ComfyUI)


def call_slots(case: DiffusionCase, spec: DiffusionSpec, repeats: int) -> list[CallSlot]:
    """The case's calls in order, each with `batch` prompts that no other call of the run has (a seeded stream of
    corpus sentences, with the case and call in the seed)."""
    rng = random.Random(f"{spec.seed}/{case.id}")
    seen: set[str] = set()

    def fresh() -> str:
        text = sentence(rng)
        if text in seen:  # the corpus repeats itself now and then: a number makes the prompt new
            text = f"{text} {len(seen)}"
        seen.add(text)
        return text

    phases = [("warmup", -1)] * spec.warmup_calls + [("measure", r) for r in range(repeats) for _ in range(spec.calls)]
    return [CallSlot(phase, repeat, tuple(fresh() for _ in range(case.batch))) for phase, repeat in phases]


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def window_metrics(calls: Sequence[Call]) -> dict[str, Any]:
    """One window's numbers (what the gates compare across repeats)."""
    latencies = [1000.0 * c.seconds / c.images for c in calls if c.images]
    seconds = sum(c.seconds for c in calls)
    images = sum(c.images for c in calls)
    return {
        MEAN_LATENCY_PER_IMAGE_MS: statistics.fmean(latencies) if latencies else None,
        IMAGES_PER_S: images / seconds if seconds > 0 and images else None,
        "images": images,
        "calls": len(calls),
    }


def problems(calls: Sequence[Call], case: DiffusionCase, guarded_nodes: Sequence[str] = ()) -> list[str]:
    """Why the case's numbers cannot be trusted: wrong image counts or sizes, or work answered from a cache."""
    found = []
    for i, call in enumerate(calls):
        if call.images != case.batch:
            found.append(f"call {i} made {call.images} images, not {case.batch}")
        wrong = [size for size in call.sizes if size != (case.width, case.height)]
        if wrong:
            found.append(f"call {i} made images of {wrong[0][0]}x{wrong[0][1]} (width x height), not the case's size")
        cached = sorted(set(call.cached_nodes) & set(guarded_nodes))
        if cached:
            found.append(f"call {i}: nodes {', '.join(cached)} were answered from the server's cache")
    return found


def summarise(
    calls: Sequence[Call], case: DiffusionCase, repeats: int, guarded_nodes: Sequence[str] = ()
) -> tuple[dict[str, Any], list[dict[str, Any]], list[str]]:
    """(metrics over every measured call, metrics per window, invalid reasons)."""
    measured = [c for c in calls if c.phase == "measure"]
    warmup = [c for c in calls if c.phase == "warmup"]
    windows = [window_metrics([c for c in measured if c.repeat == r]) for r in range(repeats)]
    reasons = problems(calls, case, guarded_nodes)
    if len(measured) < repeats or any(w["calls"] == 0 for w in windows):
        reasons.append(f"{len(measured)} calls measured; the case needs {repeats} windows")
    latencies = [1000.0 * c.seconds / c.images for c in measured if c.images]
    server = [1000.0 * c.server_seconds / c.images for c in measured if c.server_seconds is not None and c.images]
    overall = window_metrics(measured)
    metrics: dict[str, Any] = {
        MEAN_LATENCY_PER_IMAGE_MS: overall[MEAN_LATENCY_PER_IMAGE_MS],
        MEDIAN_LATENCY_PER_IMAGE_MS: statistics.median(latencies) if latencies else None,
        P90_LATENCY_PER_IMAGE_MS: _percentile(latencies, 0.9) if latencies else None,
        MIN_LATENCY_PER_IMAGE_MS: min(latencies) if latencies else None,
        MAX_LATENCY_PER_IMAGE_MS: max(latencies) if latencies else None,
        IMAGES_PER_S: overall[IMAGES_PER_S],
        "images": overall["images"],
        "calls": overall["calls"],
        "warmup_calls": len(warmup),
        "mean_warmup_call_ms": 1000.0 * statistics.fmean(c.seconds for c in warmup) if warmup else None,
    }
    if server:
        metrics["mean_server_latency_per_image_ms"] = statistics.fmean(server)
    return metrics, windows, reasons
