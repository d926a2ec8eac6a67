"""CPU placement of the client: the measuring thread moves to its cores for the block and back after."""

from __future__ import annotations

import os
import threading

import pytest

from harness.runtime.affinity import pinned, unusable, usable_cpus


def test_pinned_moves_the_calling_thread_and_restores_it() -> None:
    before = os.sched_getaffinity(0)
    core = min(before)
    with pinned([core]):
        assert os.sched_getaffinity(0) == {core}
        seen: list[set[int]] = []
        thread = threading.Thread(target=lambda: seen.append(os.sched_getaffinity(0)))
        thread.start()
        thread.join()
        assert seen == [{core}], "a thread started in the block inherits the placement"
    assert os.sched_getaffinity(0) == before


def test_pinned_restores_the_cores_when_the_block_raises() -> None:
    before = os.sched_getaffinity(0)
    with pytest.raises(RuntimeError), pinned([min(before)]):
        raise RuntimeError("the measurement failed")
    assert os.sched_getaffinity(0) == before


def test_no_cores_leaves_the_thread_where_it_is() -> None:
    before = os.sched_getaffinity(0)
    with pinned(None):
        assert os.sched_getaffinity(0) == before


def test_unusable_names_the_cores_outside_this_process_affinity() -> None:
    assert unusable(sorted(usable_cpus())) == []
    assert unusable([min(usable_cpus()), 4096]) == [4096]
