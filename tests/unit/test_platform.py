"""Platform detection says what it looked for; the CPU server environment is the measured one (docs/measurement.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.platform import detect as detection
from harness.platform.environment import server_environment


def test_npu_absent_reason_names_what_was_looked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(detection, "_has_module", lambda name: False)
    found = detection.detect_npu()
    assert not found.available
    assert found.reason == "no Ascend NPU: npu-smi not found, torch_npu not importable"


def test_npu_found_through_npu_smi(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "npu-smi"  # a stand-in binary: real npu-smi needs the Ascend driver
    fake.write_text("#!/bin/sh\necho '| npu-smi 23.0.0 Version: 23.0.0 |'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert detection.detect_npu().available


def test_a_failing_npu_smi_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "npu-smi"
    fake.write_text("#!/bin/sh\nexit 9\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(detection, "_has_module", lambda name: False)
    assert "npu-smi info exited 9" in detection.detect_npu().reason


def test_gpu_absent_here(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    found = detection.detect_gpu()
    assert not found.available
    assert found.reason == "no NVIDIA GPU: nvidia-smi not found"


def test_cpu_environment_keeps_caches_in_the_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    monkeypatch.delenv("VLLM_CPU_OMP_THREADS_BIND", raising=False)
    env = server_environment("cpu", tmp_path, overrides={"EXTRA": "1"})
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "1"
    assert env["VLLM_CPU_OMP_THREADS_BIND"] == "auto"
    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["VLLM_NO_USAGE_STATS"] == "1"
    for key in ("VLLM_CACHE_ROOT", "TORCHINDUCTOR_CACHE_DIR", "HF_HOME"):
        assert env[key].startswith(str(tmp_path))
    assert env["EXTRA"] == "1"


def test_device_variables_for_accelerators(tmp_path: Path) -> None:
    assert server_environment("npu", tmp_path, devices=[2, 3])["ASCEND_RT_VISIBLE_DEVICES"] == "2,3"
    assert server_environment("gpu", tmp_path, devices=[0])["CUDA_VISIBLE_DEVICES"] == "0"
    assert "HF_HUB_OFFLINE" not in server_environment("npu", tmp_path)
