"""Telemetry readers and the sampler: npu-smi through a fake tool on PATH that prints a saved `npu-smi info`, NVML
through a fake `pynvml` module with nvidia-ml-py's documented calls, the CPU default's process tree for real, and
the sampler process (readings written as taken, a failed reading recorded, stopped on exit or at its deadline)."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from harness.metrics.telemetry import Reading, Sampler, npu_smi_reader, nvml_reader, process_reader, readings

DATA = Path(__file__).parent / "data" / "npu_smi"


def test_npu_smi_readings_per_chip_from_the_tool_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "npu-smi"  # a fake npu-smi: prints a saved `npu-smi info` of two 910B4 cards
    fake.write_text(f"#!/bin/sh\ncat {DATA / 'info_910b4_processes_quirks.txt'}\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert npu_smi_reader()() == [
        {"device": "npu0.0", "aicore_pct": 0.0, "hbm_used_mb": 20701.0, "power_w": 87.2, "temp_c": 33.0},
        {"device": "npu1.0", "aicore_pct": 12.0, "hbm_used_mb": 2654.0, "power_w": None, "temp_c": 35.0},
    ]


@pytest.fixture
def fake_pynvml(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A fake `pynvml` with the calls nvidia-ml-py documents, for two GPUs; returns the list of calls made."""
    calls: list[str] = []
    module = types.ModuleType("pynvml")
    module.NVML_TEMPERATURE_GPU = 0  # type: ignore[attr-defined]

    def record(name: str, value: object) -> object:
        calls.append(name)
        return value

    module.nvmlInit = lambda: record("nvmlInit", None)  # type: ignore[attr-defined]
    module.nvmlDeviceGetCount = lambda: record("nvmlDeviceGetCount", 2)  # type: ignore[attr-defined]
    module.nvmlDeviceGetHandleByIndex = lambda i: record("nvmlDeviceGetHandleByIndex", i)  # type: ignore[attr-defined]
    module.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=40 + h, memory=10)  # type: ignore[attr-defined]
    module.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(used=(h + 1) * 2**30, total=80 * 2**30)  # type: ignore[attr-defined]
    module.nvmlDeviceGetPowerUsage = lambda h: 250_000 + h  # type: ignore[attr-defined]  # milliwatts
    module.nvmlDeviceGetTemperature = lambda h, sensor: record("nvmlDeviceGetTemperature", 60 + h)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pynvml", module)
    return calls


def test_nvml_readings_per_gpu_in_the_units_of_the_report(fake_pynvml: list[str]) -> None:
    assert nvml_reader()() == [
        {"device": "gpu0", "util_pct": 40.0, "memory_used_mb": 1024.0, "power_w": 250.0, "temp_c": 60.0},
        {"device": "gpu1", "util_pct": 41.0, "memory_used_mb": 2048.0, "power_w": 250.001, "temp_c": 61.0},
    ]
    assert fake_pynvml[:2] == ["nvmlInit", "nvmlDeviceGetCount"]


def test_the_cpu_reading_follows_a_real_process_tree() -> None:
    busy = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 3\nwhile time.time() < end: pass"])
    try:
        read = process_reader(busy.pid)
        (first,) = read()
        assert first["cores"] is None  # no interval yet
        time.sleep(1.0)
        (second,) = read()
    finally:
        busy.kill()
        busy.wait()
    assert second["cores"] > 0.1, second  # a busy loop for a second: a tenth of a core at the least, however shared
    assert second["rss_mb"] > 1.0
    with pytest.raises(ProcessLookupError):
        read()


def test_a_busy_child_that_leaves_the_tree_does_not_make_cores_negative() -> None:
    """A parent whose child burns a second of CPU and exits between two readings: the child's time leaves the tree
    with it (found in the main job's report as a dip below zero before this was summed process by process)."""
    script = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time\\nend = time.time() + 1.2\\n"
        "while time.time() < end: pass'])\n"
        "time.sleep(1.5)\nchild.wait()\ntime.sleep(3)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        read = process_reader(parent.pid)
        time.sleep(0.3)
        read()
        time.sleep(1.0)
        (busy,) = read()  # the child is burning CPU
        time.sleep(1.0)
        (after,) = read()  # the child has exited and been reaped
    finally:
        parent.kill()
        parent.wait()
    assert busy["cores"] > 0.1, busy
    assert after["cores"] is not None
    assert after["cores"] >= 0.0, after


def test_the_sampler_writes_as_it_reads_records_failures_and_stops(tmp_path: Path) -> None:
    count = 0

    def reader() -> list[Reading]:
        nonlocal count
        count += 1
        if count == 2:
            raise OSError("npu-smi timed out")
        return [{"device": "d0", "n": count}]

    out = tmp_path / "telemetry.jsonl"
    with Sampler(reader, out, interval_s=0.05) as sampler:
        time.sleep(0.5)
    assert not sampler._process.is_alive()
    lines = readings(out)
    assert len(lines) >= 4
    assert lines[1]["error"] == "OSError: npu-smi timed out"
    assert [line["n"] for line in lines if "n" in line][:2] == [1, 3]
    assert all(a["t"] < b["t"] for a, b in itertools.pairwise(lines))
    with Sampler(reader, tmp_path / "short.jsonl", interval_s=0.05, deadline_s=0.2):
        time.sleep(0.8)
    assert len(readings(tmp_path / "short.jsonl")) <= 6, "the deadline ends sampling"


SAMPLING_RUN = """
import sys, time
from pathlib import Path
from harness.metrics.telemetry import Sampler

out = Path(sys.argv[1])
with Sampler(lambda: [{"device": "d0"}], out, interval_s=0.05):
    while not (out.exists() and out.read_text()):
        time.sleep(0.01)
    print("sampling", flush=True)
    time.sleep(600)
"""


def test_a_sampler_ends_with_a_run_killed_by_sigkill_and_lets_go_of_its_output(tmp_path: Path) -> None:
    """kill -9 of pytest runs no teardown: the forked sampler must not outlive it, nor hold its stdout pipe open
    (a caller reading pytest's output would wait for the sampler's hour-long deadline)."""
    out = tmp_path / "telemetry.jsonl"
    run = subprocess.Popen(
        [sys.executable, "-c", SAMPLING_RUN, str(out)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        assert run.stdout is not None
        assert run.stdout.readline() == "sampling\n"
        run.kill()
        run.communicate(timeout=10)  # EOF: nobody holds the pipe any more
    finally:
        run.kill()
        run.wait(5)
    time.sleep(0.3)
    written = len(readings(out))
    time.sleep(0.5)
    assert written > 0
    assert len(readings(out)) == written, "the sampler went on reading after its run was killed"
