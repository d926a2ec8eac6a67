"""Which plan each platform's tests use: the given plan alone, else the platform's default, loaded on demand."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config.plan import Plan
from harness.config.plans import Plans
from harness.errors import PlanError

TINY = """
name: {name}
platform: {platform}
model:
  tiny: {{hidden-size: 128, num-heads: 2}}
server:
  served-model-name: m
  max-model-len: 512
"""


def write(folder: Path, name: str, platform: str = "cpu") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(TINY.format(name=name, platform=platform))
    return path


def test_without_a_given_plan_the_default_is_loaded_once_when_first_asked(tmp_path: Path) -> None:
    write(tmp_path, "default")
    loads: list[str] = []
    plans = Plans(tmp_path, defaults={"cpu": "default.yaml"}, on_load=lambda plan: loads.append(plan.name))
    assert plans.applies("cpu")
    assert not plans.applies("npu")
    assert loads == []
    assert plans.first is None
    first = plans.for_platform("cpu")
    assert first is not None
    assert first.name == "default"
    assert plans.for_platform("cpu") is first
    assert loads == ["default"]
    assert plans.for_platform("npu") is None
    assert plans.skip_reason("cpu") is None
    assert plans.first is first


def test_a_given_plan_replaces_the_defaults_and_skips_the_other_platforms(tmp_path: Path) -> None:
    write(tmp_path, "default")
    given = write(tmp_path, "mine")
    loads: list[Plan] = []
    plans = Plans.from_option(tmp_path, str(given), on_load=loads.append)
    assert [p.name for p in loads] == ["mine"]
    assert plans.for_platform("cpu") is plans.given
    assert plans.first is plans.given
    assert not plans.applies("gpu")
    assert plans.for_platform("gpu") is None
    reason = plans.skip_reason("gpu")
    assert reason is not None
    assert "mine.yaml targets cpu, not gpu" in reason


def test_a_plan_for_a_platform_absent_here_is_not_refused_for_this_machine(tmp_path: Path) -> None:
    """`pytest -m npu --plan npu-....yaml` on a CPU machine failed on model.path before saying there is no NPU."""
    given = tmp_path / "npu.yaml"
    given.write_text("name: n\nplatform: npu\nmodel: {path: /data/models/qwen}\n")
    plans = Plans.from_option(tmp_path, str(given), runs_here=lambda platform: platform == "cpu")
    assert plans.given is not None
    assert plans.given.platform == "npu"
    with pytest.raises(PlanError, match=r"npu.yaml: model.path"):  # where the NPU is, the machine is checked
        Plans.from_option(tmp_path, str(given), runs_here=lambda platform: True)


def test_a_default_plan_that_cannot_run_is_refused_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("name: b\nplatform: cpu\nmodel: {path: nowhere}\n")
    plans = Plans(tmp_path, defaults={"cpu": "broken.yaml"})
    with pytest.raises(PlanError, match=r"broken.yaml: model.path"):
        plans.for_platform("cpu")
    assert plans.loaded == {}
