"""The llmqual command: plan checks and platform listing."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_plan_check_accepts_the_shipped_plans(capsys: pytest.CaptureFixture[str]) -> None:
    plans = sorted(str(p) for p in (REPO / "fixtures/plans").glob("*.yaml"))
    assert main(["plan", "check", *plans]) == 0
    assert capsys.readouterr().out.count(": ok (") == len(plans)


def test_plan_check_names_the_bad_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nplatform: cpu\nmodel: {tiny: {}}\nserver: {dtype: fp33}\n")
    assert main(["plan", "check", str(bad)]) == 2
    assert f"{bad}: server.dtype:" in capsys.readouterr().err


def test_runnable_check_refuses_a_missing_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "check", "--runnable", str(REPO / "fixtures/plans/npu-qwen2.5-7b-910b.yaml")]) == 2
    assert "model.path: no model directory" in capsys.readouterr().err


def test_platform_lists_every_platform(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["platform"]) == 0
    out = capsys.readouterr().out
    assert "npu: absent (no Ascend NPU" in out
    assert "cpu: available" in out
