"""CPU time on this host, read from /proc: all of it, and the harness's own process tree.

An A/B window on a shared host is disturbed when something outside the harness (another tenant, a build, a cron
job) takes CPU while it is measured. `OutsideCPU` measures that: the host's busy CPU seconds (/proc/stat) over a
window minus those of the harness's process and its descendants (the servers it started included), divided by
the window's length: the number of cores others kept busy. Pure reading of /proc; Linux only.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")
_IDLE_FIELDS = (3, 4)  # idle, iowait of the `cpu` line (after the name)


def host_busy_s(proc: Path = Path("/proc")) -> float:
    """CPU seconds every core of the host has spent busy since boot (user, nice, system, irq, softirq, steal)."""
    fields = (proc / "stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(f) for i, f in enumerate(fields[:8]) if i not in _IDLE_FIELDS]
    return sum(ticks) * TICK_S


def stat_fields(stat: str) -> list[str]:
    """Fields of /proc/PID/stat after the parenthesised command (field 3, the state, is the first)."""
    return stat[stat.rfind(")") + 2 :].split()


def tree_cpu_s(root: int, proc: Path = Path("/proc")) -> float:
    """CPU seconds of process `root` and its live descendants; `root`'s reaped children's time included."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = stat_fields((entry / "stat").read_text())
        except OSError:
            continue  # gone while we looked
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
        times[pid] = (utime + stime + (cutime + cstime if pid == root else 0)) * TICK_S
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += times.get(pid, 0.0)
        todo += children.get(pid, [])
    return total


@dataclass
class OutsideCPU:
    """Cores kept busy by processes outside the harness's tree during a `with` block (`cores` after it)."""

    root: int = field(default_factory=os.getpid)
    proc: Path = Path("/proc")
    cores: float | None = None

    def _sample(self) -> tuple[float, float, float]:
        return time.monotonic(), host_busy_s(self.proc), tree_cpu_s(self.root, self.proc)

    def __enter__(self) -> OutsideCPU:
        self._start = self._sample()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        end = self._sample()
        elapsed = end[0] - self._start[0]
        outside = (end[1] - self._start[1]) - (end[2] - self._start[2])
        self.cores = max(0.0, outside) / elapsed if elapsed > 0 else 0.0
