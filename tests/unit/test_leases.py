"""Device leases contended by several real processes: never two holders of one device; released on every exit
path, SIGKILL included."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.platform.environment import device_environment
from harness.runtime.leases import DeviceLease, LeaseError

# A process that leases 2 of 4 NPUs, marks when it holds them, holds them `hold` seconds and reports what it had.
HOLDER = """
import json, sys, time
from pathlib import Path
from harness.runtime.leases import DeviceLease
folder, name, hold, out = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3]), Path(sys.argv[4])
with DeviceLease(folder, "npu", [0, 1, 2, 3], 2, timeout_s=60, holder=name, poll_s=0.01) as lease:
    start, devices = time.monotonic(), lease.devices
    Path(str(out) + ".held").write_text("")
    time.sleep(hold)
    end = time.monotonic()
out.write_text(json.dumps({"devices": devices, "start": start, "end": end}))
"""

REPO = Path(__file__).resolve().parents[2]


def _spawn(folder: Path, name: str, hold: float, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", HOLDER, str(folder), name, str(hold), str(out)], cwd=REPO)


def test_contending_processes_never_share_a_device(tmp_path: Path) -> None:
    outs = [tmp_path / f"w{i}.json" for i in range(6)]
    procs = [_spawn(tmp_path / "leases", f"worker {i}", 0.3, out) for i, out in enumerate(outs)]
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    spans = [json.loads(out.read_text()) for out in outs]
    assert all(len(s["devices"]) == 2 for s in spans)
    for i, a in enumerate(spans):
        for b in spans[i + 1 :]:
            overlap = a["start"] < b["end"] and b["start"] < a["end"]
            assert not (overlap and set(a["devices"]) & set(b["devices"])), (a, b)
    assert max(sum(1 for s in spans if s["start"] <= t["start"] < s["end"]) for t in spans) <= 2, "4 cards, 2 each"


def test_a_killed_holder_frees_its_devices(tmp_path: Path) -> None:
    folder = tmp_path / "leases"
    out = tmp_path / "victim.json"
    victim = _spawn(folder, "victim", 600, out)
    try:
        deadline = time.monotonic() + 60
        while not Path(str(out) + ".held").exists():
            assert time.monotonic() < deadline, "the victim never got its lease"
            time.sleep(0.05)
        blocked = DeviceLease(folder, "npu", [0, 1, 2, 3], 3, timeout_s=0.3, poll_s=0.01)
        with pytest.raises(LeaseError, match="held: 0: victim, 1: victim"):
            blocked.__enter__()
    finally:
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=30)
    with DeviceLease(folder, "npu", [0, 1, 2, 3], 4, timeout_s=5) as lease:
        assert lease.devices == [0, 1, 2, 3]
        assert device_environment("npu", lease.devices) == {"ASCEND_RT_VISIBLE_DEVICES": "0,1,2,3"}


def _fail_inside(lease: DeviceLease) -> None:
    with lease:
        assert device_environment("gpu", lease.devices) == {"CUDA_VISIBLE_DEVICES": "5"}
        raise RuntimeError("planted")


def test_release_on_exception_and_gpu_variable(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="planted"):
        _fail_inside(DeviceLease(tmp_path, "gpu", [5, 6], 1, timeout_s=1))
    with DeviceLease(tmp_path, "gpu", [5, 6], 2, timeout_s=1) as both:
        assert both.devices == [5, 6]


def test_bad_requests_are_refused() -> None:
    with pytest.raises(LeaseError, match="asked for 3"):
        DeviceLease(Path("/tmp"), "npu", [0, 1], 3, timeout_s=1)
    with pytest.raises(ValueError, match="npu or gpu"):
        DeviceLease(Path("/tmp"), "cpu", [0], 1, timeout_s=1)
