"""CPU placement: which cores a server's processes and the harness's client may run on (Linux affinity).

On a machine where the engine, its API server and the client share a few cores, where each runs decides both the
throughput and how well two measurements of one configuration agree (docs/measurement.md, "Placement"). Left to
the scheduler, the processes of one server instance land differently from those of the next, and the instance's
throughput with them; pinned, every instance is placed alike.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence


def usable_cpus() -> set[int]:
    """The cores this process may run on."""
    return set(os.sched_getaffinity(0))


def unusable(cpus: Sequence[int]) -> list[int]:
    """The cores of `cpus` this process may not run on (absent, or outside its cgroup or affinity)."""
    return sorted(set(cpus) - usable_cpus())


def placement_problem(cpus: Sequence[int] | None) -> str | None:
    """Why `cpus` cannot be used here (for an error naming the key or option), or None when they can."""
    missing = unusable(cpus) if cpus else []
    if not missing:
        return None
    return f"core(s) {missing} are not usable here (this process may run on {sorted(usable_cpus())})"


@contextlib.contextmanager
def pinned(cpus: Sequence[int] | None) -> Iterator[None]:
    """Run the calling thread on `cpus` inside the block (None: leave it where it is), then restore its cores.

    Only the calling thread moves (Linux applies affinity per thread), and threads or processes it starts in
    the block inherit the placement.
    """
    if not cpus:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)
