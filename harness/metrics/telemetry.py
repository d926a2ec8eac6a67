"""Device telemetry sampled while a server is under load: one reading per card (or, on the CPU default, of the
engine's processes) every `interval_s`, in a process of its own, written as it is taken.

Readers, one per platform:

- NPU: `npu-smi info`, one call for every card (harness.platform.npu_smi parses it). Per chip it gives AICore %,
  HBM used (MB), power (W) and temperature (C).
- GPU: NVML through nvidia-ml-py (`import pynvml`). Per GPU it gives utilisation %, memory used (MB), power (W,
  from NVML's mW) and temperature (C).
- CPU: the server's process tree from /proc. It gives the cores its processes kept busy since the last reading
  and their resident memory (MB).

The sampler appends one JSON line per reading: `{"t": monotonic seconds, "device": label, ...metrics}`, or
`{"t", "error"}` when a reading failed. A failed reading is recorded and sampling goes on. It stops when asked, or
at its deadline.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from harness.platform.npu_smi import parse_info
from harness.runtime.cputime import TICK_S, stat_fields
from harness.runtime.process import die_with_parent

Reading = dict[str, Any]  # "device" and its metrics
Reader = Callable[[], list[Reading]]
NPU_SMI_TIMEOUT_S = 10.0


def npu_smi_reader(command: tuple[str, ...] = ("npu-smi", "info")) -> Reader:
    def read() -> list[Reading]:
        done = subprocess.run(command, capture_output=True, text=True, timeout=NPU_SMI_TIMEOUT_S, check=True)
        return [
            {
                "device": f"npu{chip.npu}.{chip.chip}",
                "aicore_pct": chip.aicore_pct,
                "hbm_used_mb": chip.hbm_used_mb,
                "power_w": chip.power_w,
                "temp_c": chip.temp_c,
            }
            for chip in parse_info(done.stdout).chips
        ]

    return read


def nvml_reader() -> Reader:
    import pynvml  # type: ignore[import-not-found]  # nvidia-ml-py: only on a GPU host

    started: list[bool] = []

    def read() -> list[Reading]:
        if not started:  # in the sampler's own process: an NVML handle does not cross a fork
            pynvml.nvmlInit()
            started.append(True)
        readings = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            readings.append(
                {
                    "device": f"gpu{index}",
                    "util_pct": float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu),
                    "memory_used_mb": pynvml.nvmlDeviceGetMemoryInfo(handle).used / 2**20,
                    "power_w": pynvml.nvmlDeviceGetPowerUsage(handle) / 1000.0,
                    "temp_c": float(pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU)),
                }
            )
        return readings

    return read


def _tree(root: int, proc: Path) -> dict[int, list[str]]:
    """/proc/PID/stat fields of `root` and its live descendants."""
    stats: dict[int, list[str]] = {}
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                stats[int(entry.name)] = stat_fields((entry / "stat").read_text())
            except OSError:
                continue
    members, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            members[pid] = stats[pid]
            todo += [child for child, fields in stats.items() if int(fields[1]) == pid]
    return members


def process_reader(root: int, proc: Path = Path("/proc"), clock: Callable[[], float] = time.monotonic) -> Reader:
    """The CPU default's reading: cores busy (since the previous reading) and resident MB of `root`'s tree.

    Busy time is summed process by process (a process keyed by its pid and start time): one that left the tree
    since the previous reading takes its CPU time with it, and must not make the difference negative."""
    previous: dict[tuple[int, str], float] = {}
    last: list[float] = []

    def read() -> list[Reading]:
        tree = _tree(root, proc)
        if not tree:
            raise ProcessLookupError(f"process {root} is gone")
        cpu = {(pid, f[19]): (int(f[11]) + int(f[12])) * TICK_S for pid, f in tree.items()}
        rss_pages = sum(int(f[21]) for f in tree.values())
        now = clock()
        busy = sum(max(0.0, spent - previous.get(key, 0.0)) for key, spent in cpu.items())
        cores = busy / (now - last[0]) if last and now > last[0] else None
        previous.clear()
        previous.update(cpu)
        last[:] = [now]
        return [{"device": "cpu", "cores": cores, "rss_mb": rss_pages * os.sysconf("SC_PAGE_SIZE") / 2**20}]

    return read


def reader_for(platform: str, server_pid: int | None) -> Reader | None:
    """The platform's reader: npu-smi on NPU, NVML on GPU, the server's process tree on the CPU default (None
    there when the server's own processes are not this host's to read: in a container, or not started by us)."""
    if platform == "npu":
        return npu_smi_reader()
    if platform == "gpu":
        return nvml_reader()
    return process_reader(server_pid) if server_pid is not None else None


def _detach(parent: int) -> None:  # pragma: no cover - runs in the forked sampler
    """Make the sampler end with the run that forked it, even one killed with SIGKILL, and let go of that run's
    terminal or pipe: a sampler left behind would otherwise keep a caller reading pytest's output waiting."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the harness's handler, inherited through the fork
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole foreground group; the run stops us
    die_with_parent()
    if os.getppid() != parent:  # the run died before the request above took effect
        os._exit(0)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def _sample(reader: Reader, out: Path, interval_s: float, deadline_s: float, stop: Any, parent: int) -> None:
    """The sampler process: read, append, wait; until `stop` is set, the deadline passes or the run is gone."""
    _detach(parent)
    end = time.monotonic() + deadline_s
    with out.open("a", encoding="utf-8") as handle:
        while time.monotonic() < end and not stop.is_set() and os.getppid() == parent:
            t = time.monotonic()
            try:
                lines = [{"t": t, **reading} for reading in reader()]
            except Exception as exc:  # a failed reading is data; sampling goes on
                lines = [{"t": t, "error": f"{type(exc).__name__}: {exc}"[:300]}]
            handle.write("".join(json.dumps(line) + "\n" for line in lines))
            handle.flush()
            stop.wait(max(0.0, interval_s - (time.monotonic() - t)))


@dataclass
class Sampler:
    """`with Sampler(reader, out, interval_s, deadline_s):` samples in a forked process while the block runs."""

    reader: Reader
    out: Path
    interval_s: float = 1.0
    deadline_s: float = 3600.0

    def __enter__(self) -> Sampler:
        context = multiprocessing.get_context("fork")  # the reader is a closure: forked, not pickled
        self._stop = context.Event()
        self._process = context.Process(
            target=_sample,
            args=(self.reader, self.out, self.interval_s, self.deadline_s, self._stop, os.getpid()),
            daemon=True,
        )
        self._process.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._process.join(self.interval_s + NPU_SMI_TIMEOUT_S + 5.0)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5.0)


def readings(path: Path) -> list[Reading]:
    """The lines a sampler wrote (an empty list for a missing file)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
