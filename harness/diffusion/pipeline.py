"""A diffusion case through diffusers' pipeline: the job for the worker process (harness.diffusion.worker), run
under the case's deadline with its whole process group stopped on every exit path, and its events read back.

The worker writes each call's event as it happens into `<run>/diffusion/<case>/events.jsonl`, so a case that
fails half way (a crash, the deadline) keeps on disk what it measured; its console is `worker.log` beside it.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from harness.config.diffusion import DiffusionSpec
from harness.diffusion.cases import DiffusionCase
from harness.diffusion.protocol import Call, CallSlot
from harness.errors import HarnessError, ProcessFailed
from harness.platform.environment import device_environment
from harness.runtime import process
from harness.runtime.leases import LEASED_PLATFORMS, DeviceLease

DEVICES = {"cpu": "cpu", "gpu": "cuda", "npu": "npu"}  # platform -> torch device
LEASE_TIMEOUT_S = 600.0


class DiffusionError(HarnessError):
    """The pipeline could not make the case's images."""


def worker_job(
    case: DiffusionCase,
    spec: DiffusionSpec,
    slots: list[CallSlot],
    model: Path | None,
    cache: Path,
    platform: str,
    folder: Path,
) -> dict[str, Any]:
    return {
        "model": "tiny" if model is None else str(model),
        "cache": str(cache),
        "device": DEVICES[platform],
        "dtype": spec.dtype,
        "height": case.height,
        "width": case.width,
        "steps": case.steps,
        "guidance_scale": spec.guidance_scale,
        "max_sequence_length": spec.max_sequence_length,
        "seed": spec.seed,
        "calls": [{"phase": s.phase, "repeat": s.repeat, "prompts": list(s.prompts)} for s in slots],
        "out": str(folder / "events.jsonl"),
        "sample": str(folder / "sample.png"),
    }


@contextlib.contextmanager
def worker_card(platform: str, devices: Sequence[int], leases: Path, holder: str) -> Iterator[dict[str, str]]:
    """The worker's environment with one card of `devices` (default: card 0) leased for as long as the case runs
    on NPU and GPU (never a card a server of this or another run holds); nothing on the CPU."""
    if platform not in LEASED_PLATFORMS:
        yield {}
        return
    with DeviceLease(leases, platform, list(devices) or [0], 1, LEASE_TIMEOUT_S, holder) as lease:
        yield device_environment(platform, lease.devices)  # type: ignore[arg-type]


def read_events(path: Path) -> tuple[dict[str, Any] | None, list[Call]]:
    """The worker's `loaded` event and its calls, as far as it got."""
    loaded, calls = None, []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return None, []
    for line in lines:
        if not line.strip():
            continue
        event = json.loads(line)
        if event["event"] == "loaded":
            loaded = event
        elif event["event"] == "call":
            sizes = tuple((int(w), int(h)) for w, h in event["sizes"])
            calls.append(Call(event["phase"], event["repeat"], event["seconds"], event["images"], sizes))
    return loaded, calls


def run_pipeline_case(
    case: DiffusionCase,
    spec: DiffusionSpec,
    slots: list[CallSlot],
    model: Path | None,
    cache: Path,
    platform: str,
    folder: Path,
    *,
    devices: Sequence[int] = (),
    leases: Path | None = None,
) -> tuple[dict[str, Any], list[Call]]:
    """Run the case's calls in a worker process; (the `loaded` event, the calls). A worker that fails or misses the
    deadline is a DiffusionError with its console's last lines (what it measured stays in events.jsonl). On NPU
    and GPU the worker leases one card of `devices` in `leases` (the host's lease folder) and sees only it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "events.jsonl").unlink(missing_ok=True)
    job = folder / "job.json"
    job.write_text(json.dumps(worker_job(case, spec, slots, model, cache, platform, folder), indent=1))
    argv = [sys.executable, "-m", "harness.diffusion.worker", str(job)]
    try:
        with worker_card(platform, devices, leases or cache / "leases", f"diffusion case {case.id}") as env:
            process.run_to_end(
                argv,
                folder / "worker.log",
                env,
                spec.timeout_s,
                f"diffusion case {case.id}",
                None,
                "suites.diffusion.timeout-s",
            )
    except ProcessFailed as exc:
        raise DiffusionError(str(exc)) from exc
    loaded, calls = read_events(folder / "events.jsonl")
    if loaded is None:
        raise DiffusionError(f"the diffusion worker of {case.id} ended without loading the pipeline ({folder})")
    return loaded, calls
