"""A profile of the server around one piece of work: `/start_profile`, the work, `/stop_profile`, the new traces.

How the server is told where to write (it must be started so):

- vLLM 0.32 on CPU and GPU: `--profiler-config {"profiler": "torch", "torch_profiler_dir": DIR}`; its workers write
  torch Chrome traces (`*.pt.trace.json.gz`) there when the profile stops, the API server one of its own.
- vllm-ascend (0.11 to 0.13, read in `vllm_ascend/worker/worker_v1.py` / `worker.py`): `VLLM_TORCH_PROFILER_DIR=DIR`;
  its workers run torch_npu's profiler (CPU and NPU activities, Level1, Text export) into `DIR/*_ascend_pt/`, with
  `ASCEND_PROFILER_OUTPUT/op_statistic.csv` per card.

The traces of one capture are moved into a folder of their own; the top operators by self time are computed from
them (harness.profile.operators).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError
from harness.profile.operators import OperatorTime, operators_of, trace_files
from harness.server.endpoint import Endpoint
from harness.server.vllm import ServerConfig

STOP_TIMEOUT_S = 600.0  # writing a trace can take minutes on a big model
FILES_TIMEOUT_S = 60.0  # traces written after /stop_profile returned (asynchronous handlers)
SETTLE_S = 2.0  # no trace file appeared or grew for this long: every worker has written its own
POLL_S = 0.25


class ProfileError(HarnessError):
    """A profile could not be captured (the server has no profiler, or wrote nothing)."""


def with_profiler(config: ServerConfig, directory: Path) -> ServerConfig:
    """`config` started with its profiler writing into `directory` (absolute), the way its platform takes it."""
    directory = directory.resolve()
    if config.platform == "npu":
        env = (*config.env, ("VLLM_TORCH_PROFILER_DIR", str(directory)))
        return dataclasses.replace(config, env=tuple(sorted(env)))
    setting = {"profiler": "torch", "torch_profiler_dir": str(directory), "torch_profiler_with_stack": False}
    extra = (*config.spec.extra_args, "--profiler-config", json.dumps(setting, sort_keys=True))
    return dataclasses.replace(config, spec=config.spec.model_copy(update={"extra_args": extra}))


def _post(endpoint: Endpoint, path: str, timeout_s: float) -> None:
    request = urllib.request.Request(endpoint.url(path), data=b"{}", headers=endpoint.headers(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        hint = " (the server was started without a profiler)" if exc.code == 404 else ""
        raise ProfileError(f"POST {endpoint.url(path)} answered {exc.code}{hint}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ProfileError(f"POST {endpoint.url(path)} failed: {exc}") from None


def wait_for_traces(
    trace_dir: Path,
    before: set[Path],
    expected: int,
    clock: Callable[[], float] = time.monotonic,
    settle_s: float = SETTLE_S,
    timeout_s: float = FILES_TIMEOUT_S,
) -> list[Path]:
    """The trace files written since `before`, once there are at least `expected` of them and none has appeared
    or grown for `settle_s` (each worker writes its own, in its own time, and a big trace takes a while: the first
    file to appear is not the profile). At the deadline, what is there; ProfileError if nothing is."""
    ends = clock() + timeout_s
    seen: dict[Path, int] = {}
    steady_since = clock()
    while True:
        now = {f: _size(f) for f in (trace_files(trace_dir) if trace_dir.is_dir() else []) if f not in before}
        if now != seen:
            seen, steady_since = now, clock()
        elif len(seen) >= expected and clock() - steady_since >= settle_s:
            return sorted(seen)
        if clock() >= ends:
            if seen:
                return sorted(seen)
            raise ProfileError(f"the server wrote no trace into {trace_dir} within {timeout_s:.0f} s of stopping")
        time.sleep(POLL_S)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


@dataclass
class Profile:
    """One capture: where its files are, what it profiled and where the time went."""

    folder: Path
    files: list[Path]
    seconds: float
    top: list[OperatorTime]


def capture(
    endpoint: Endpoint,
    trace_dir: Path,
    out: Path,
    work: Callable[[], object],
    top: int = 20,
    clock: Callable[[], float] = time.monotonic,
    expected: int = 1,
) -> Profile:
    """Profile the server while `work()` runs; move the traces it wrote into `out`. `expected`: the trace files
    the server writes at least (one per worker: tensor x pipeline parallel size)."""
    before = set(trace_files(trace_dir)) if trace_dir.is_dir() else set()
    _post(endpoint, "/start_profile", 60.0)
    started = clock()
    try:
        work()
    finally:
        _post(endpoint, "/stop_profile", STOP_TIMEOUT_S)
    seconds = clock() - started
    new = wait_for_traces(trace_dir, before, expected, clock)
    out.mkdir(parents=True, exist_ok=True)
    moved = []
    for path in new:
        # a torch_npu trace is a folder tree (<worker>_ascend_pt/...): move the top folder under trace_dir
        top_level = trace_dir / path.relative_to(trace_dir).parts[0]
        target = out / top_level.name
        if top_level.exists() and not target.exists():
            shutil.move(str(top_level), target)
        moved.append(target / path.relative_to(top_level) if top_level != path else target)
    return Profile(out, moved, seconds, operators_of(moved, top))
