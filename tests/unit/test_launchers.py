"""Training launchers: the files built from a plan, and the process handling, with fake framework commands.

The fakes stand in for the frameworks only to write the logs they write (test data in the formats real runs write),
to fail, or to hang. LLaMA-Factory itself runs on the CPU in tests/integration/test_llamafactory_real.py; MindSpeed-LLM
needs an NPU.
"""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from harness.config.training import LlamaFactorySpec, TrainingSpec
from harness.errors import PlanError, TrainingError
from harness.runtime.process import group_members
from harness.training import launchers, llamafactory, mindspeed
from harness.training.parsers import parse_log

DATA = Path(__file__).parent / "data" / "training"
LF_LOG = DATA / "llamafactory_trainer_log.jsonl"
MEGATRON_LOG = DATA / "megatron_variants.log"


def executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def model(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    return folder


def lf_spec(**overrides: object) -> TrainingSpec:
    section = {"template": "qwen", "dataset": "alpaca_en_demo", "dataset-dir": "data"} | overrides
    return TrainingSpec.model_validate({"launcher": "llamafactory", "llamafactory": section})


def test_llamafactory_yaml_from_the_plan(tmp_path: Path, model: Path) -> None:
    spec = LlamaFactorySpec.model_validate(
        {
            "stage": "dpo",
            "finetuning-type": "lora",
            "lora-rank": 16,
            "deepspeed-zero": 3,
            "precision": "fp16",
            "template": "llama3",
            "cutoff-len": 4096,
            "data": {"path": "pairs.json", "ranking": True},
            "extra": {"flash_attn": "fa2"},
        }
    )
    config = llamafactory.llamafactory_config(spec, model, tmp_path / "out", seed=7)
    assert config["stage"] == "dpo"
    assert config["finetuning_type"] == "lora"
    assert config["lora_rank"] == 16
    assert config["fp16"] is True
    assert "bf16" not in config
    assert config["cutoff_len"] == 4096
    assert config["template"] == "llama3"
    assert config["seed"] == 7
    assert config["deepspeed"].endswith("ds_z3_config.json")
    assert config["pref_beta"] == 0.1
    assert config["flash_attn"] == "fa2"
    assert config["dataset"] == "llmqual_data"
    assert llamafactory.deepspeed_config(3)["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"]
    assert llamafactory.deepspeed_config(2)["zero_optimization"]["stage"] == 2


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"stage": "ppo"}, "stage ppo needs reward-model"),
        ({"stage": "dpo", "dataset": None, "data": {"path": "x.json"}}, "stage dpo needs data.ranking: true"),
        ({"dataset": None}, "exactly one of dataset"),
        ({"dataset": None, "data": {"path": "x.json", "synthetic": "arithmetic"}}, "exactly one of path"),
        ({"dataset": None, "data": {"synthetic": "arithmetic", "formatting": "sharegpt"}}, "formatting alpaca"),
        ({"dataset": None, "data": {"synthetic": "gsm8k"}}, "arithmetic"),
        ({"command": []}, "at least 1"),
    ],
)
def test_inconsistent_llamafactory_sections_are_refused(section: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        lf_spec(**section)


def test_a_launcher_without_its_section_is_refused() -> None:
    with pytest.raises(ValidationError, match="launcher mindspeed needs a `mindspeed:` section"):
        TrainingSpec.model_validate({"launcher": "mindspeed"})


def test_llamafactory_runs_and_its_log_is_parsed(tmp_path: Path, model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # The fake reads the YAML it is given (as LLaMA-Factory does) and writes the sample log into output_dir.
    executable(
        bin_dir / "fake-llamafactory-cli",
        f"#!/usr/bin/env python3\nimport os, sys, yaml, shutil\nconfig = yaml.safe_load(open(sys.argv[2]))\n"
        f"print('fake LLaMA-Factory', sys.argv[1], config['stage'], os.environ.get('MKL_CBWR'))\n"
        f"shutil.copy({str(LF_LOG)!r}, config['output_dir'] + '/trainer_log.jsonl')\n"
        "open(config['output_dir'] + '/trainer_state.json', 'w').write('{\"max_steps\": 9999}')\n",
    )
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    data = tmp_path / "sft.json"
    data.write_text("[]")
    spec = lf_spec(
        dataset=None,
        data={"path": str(data), "formatting": "sharegpt"},
        command=["fake-llamafactory-cli", "train"],
        env={"MKL_CBWR": "COMPATIBLE"},
        **{"deepspeed-zero": 2},
    )
    launch = launchers.prepare(spec, model, Path, tmp_path / "out", "plan.yaml")
    written = yaml.safe_load((tmp_path / "out" / "llamafactory.yaml").read_text())
    info = json.loads((tmp_path / "out" / "data" / "dataset_info.json").read_text())
    assert written["dataset_dir"] == str(tmp_path / "out" / "data")
    assert info["llmqual_data"] == {
        "file_name": str(data),
        "formatting": "sharegpt",
        "ranking": False,
        "columns": {"messages": "conversations"},
    }
    assert launch.env == {"MKL_CBWR": "COMPATIBLE", "FORCE_TORCHRUN": "1"}, "the plan's variables and torchrun's"
    run = launchers.run_launch(launch, timeout_s=60)
    assert run.curve.points == parse_log(LF_LOG.read_text()).points
    assert run.expected_steps == 9999, "the steps the trainer planned, from its trainer_state.json"
    assert "fake LLaMA-Factory train sft COMPATIBLE" in launch.console.read_text(), "the run saw the plan's env"


def test_synthetic_data_and_a_command_relative_to_the_plan(tmp_path: Path, model: Path) -> None:
    plan_dir = tmp_path / "plans"
    (tmp_path / "tools" / "bin").mkdir(parents=True)
    cli = executable(tmp_path / "tools" / "bin" / "llamafactory-cli", "#!/bin/sh\n")
    spec = lf_spec(dataset=None, data={"synthetic": "arithmetic"}, command=["../tools/bin/llamafactory-cli", "train"])
    launch = launchers.prepare(spec, model, lambda given: (plan_dir / given).resolve(), tmp_path / "out", "plan.yaml")
    assert launch.argv[:2] == [str(cli), "train"]
    info = json.loads((tmp_path / "out" / "data" / "dataset_info.json").read_text())["llmqual_data"]
    records = json.loads(Path(info["file_name"]).read_text())
    assert Path(info["file_name"]) in launch.written
    assert info["formatting"] == "alpaca"
    # The offline task's 100 facts, each prompt in the task's own question template, the answer after it.
    assert len(records) == 100
    assert records[0]["instruction"].startswith("Question: What is ")
    assert records[0]["instruction"].endswith("\nAnswer:")
    assert records[0]["output"].strip().isdigit()


def test_llamafactory_command_missing_names_the_key(tmp_path: Path, model: Path) -> None:
    spec = lf_spec(command=["no-such-llamafactory-cli", "train"])
    with pytest.raises(PlanError, match=r"plan.yaml: suites.training.llamafactory.command: 'no-such-llamafactory-cli'"):
        launchers.prepare(spec, model, Path, tmp_path / "out", "plan.yaml")


MINDSPEED_SCRIPT = """#!/bin/bash
export CUDA_DEVICE_MAX_CONNECTIONS=1
NPUS_PER_NODE=8
CKPT_SAVE_DIR="your model save ckpt path"
DATA_PATH="your data path"
TP=8
echo "TP=$TP NPUS=$NPUS_PER_NODE save=$CKPT_SAVE_DIR extra=$LLMQUAL_EXTRA"
cat "$DATA_PATH"
"""


def mindspeed_spec(script: Path, **variables: object) -> TrainingSpec:
    return TrainingSpec.model_validate(
        {"launcher": "mindspeed", "mindspeed": {"script": str(script), "vars": variables}}
    )


def test_mindspeed_script_placeholders_are_refused_before_running(tmp_path: Path, model: Path) -> None:
    script = tmp_path / "pretrain_fake.sh"
    script.write_text(MINDSPEED_SCRIPT)
    with pytest.raises(PlanError, match="still has placeholder values for CKPT_SAVE_DIR, DATA_PATH") as caught:
        launchers.prepare(mindspeed_spec(script), model, Path, tmp_path / "out", "plan.yaml")
    assert "suites.training.mindspeed.vars" in str(caught.value)
    assert not (tmp_path / "out").exists(), "nothing is written before the inputs are known good"


def test_mindspeed_script_runs_with_the_plans_variables(tmp_path: Path, model: Path) -> None:
    script = tmp_path / "pretrain_fake.sh"
    script.write_text(MINDSPEED_SCRIPT)
    spec = mindspeed_spec(
        script, CKPT_SAVE_DIR=str(tmp_path / "ckpt"), DATA_PATH=str(MEGATRON_LOG), TP=2, LLMQUAL_EXTRA="seen"
    )
    launch = launchers.prepare(spec, model, Path, tmp_path / "out", "plan.yaml")
    copy = launch.written[0].read_text()
    assert "TP=2  # set by llmqual" in copy
    assert "NPUS_PER_NODE=8" in copy
    run = launchers.run_launch(launch, timeout_s=60)
    assert f"TP=2 NPUS=8 save={tmp_path / 'ckpt'} extra=seen" in launch.console.read_text()
    assert run.curve.format == "megatron"
    assert repr(run.curve.points) == repr(parse_log(MEGATRON_LOG.read_text()).points), "NaN losses included"
    assert run.checkpoint == tmp_path / "ckpt"


# The guides' scripts end in `torchrun ... | tee logs/...`: the pipeline's status is tee's unless pipefail is on.
CRASH_THROUGH_TEE = """#!/bin/bash
TRAIN_ITERS=2000
GPT_ARGS="
    --micro-batch-size 1 \\
    --train-iters ${TRAIN_ITERS} \\
"
mkdir -p logs
(cat "$DATA_PATH"; echo 'RuntimeError: NPU out of memory'; exit 1) | tee logs/train.log
"""


def test_a_run_that_crashes_inside_a_tee_pipeline_fails(tmp_path: Path, model: Path) -> None:
    script = tmp_path / "pretrain_tee.sh"
    script.write_text(CRASH_THROUGH_TEE)
    spec = mindspeed_spec(script, DATA_PATH=str(MEGATRON_LOG), TRAIN_ITERS=10)
    launch = launchers.prepare(spec, model, Path, tmp_path / "out", "plan.yaml")
    assert launch.expected_steps == 10, "the plan's TRAIN_ITERS, as the script passes it to --train-iters"
    with pytest.raises(TrainingError, match=r"exited with 1(.|\n)*NPU out of memory"):
        launchers.run_launch(launch, timeout_s=60)


def test_train_iters_is_read_as_the_script_passes_it() -> None:
    assert mindspeed.train_iters("GPT_ARGS='--train-iters 2000 --lr 1e-5'") == 2000
    assert mindspeed.train_iters('N=300  # set by llmqual\nA="--train-iters=$N"') == 300
    assert mindspeed.train_iters("A='--train-iters ${UNSET}'") is None
    assert mindspeed.train_iters("torchrun pretrain_gpt.py") is None


def test_a_failing_run_reports_its_log_tail(tmp_path: Path, model: Path) -> None:
    script = executable(tmp_path / "fake_fail.sh", "#!/bin/bash\necho 'HCCL init failed on device 3'\nexit 7\n")
    launch = launchers.prepare(mindspeed_spec(script), model, Path, tmp_path / "out", "plan.yaml")
    with pytest.raises(TrainingError, match=r"exited with 7(.|\n)*HCCL init failed on device 3"):
        launchers.run_launch(launch, timeout_s=60)


def test_a_hanging_run_is_stopped_whole_at_its_deadline(tmp_path: Path, model: Path) -> None:
    pids = tmp_path / "pids"
    script = executable(tmp_path / "fake_hang.sh", f"#!/bin/bash\nsleep 300 &\necho $$ $! > {pids}\nwait\n")
    launch = launchers.prepare(mindspeed_spec(script), model, Path, tmp_path / "out", "plan.yaml")
    started = time.monotonic()
    with pytest.raises(TrainingError, match=r"did not finish within 1 s \(suites.training.timeout-s\)"):
        launchers.run_launch(launch, timeout_s=1.0)
    assert time.monotonic() - started < 30
    leader, child = (int(p) for p in pids.read_text().split())
    assert group_members(leader) == [], "the script and its background child are gone"
    assert not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]


def test_profile_runs_the_script_with_the_guides_profiler_variables(tmp_path: Path, model: Path) -> None:
    script = executable(
        tmp_path / "fake_prof.sh", '#!/bin/bash\necho "DO_PROFILER=$DO_PROFILER PROF=$PROF_SAVE_PATH"\n'
    )
    spec = TrainingSpec.model_validate(
        {"launcher": "mindspeed", "profile": True, "mindspeed": {"script": str(script), "vars": {}}}
    )
    launch = launchers.prepare(spec, model, Path, tmp_path / "out", "plan.yaml")
    assert launch.env["DO_PROFILER"] == "1"
    assert launch.env["PROF_SAVE_PATH"] == str((tmp_path / "out" / "profiling").resolve())
    with pytest.raises(TrainingError):  # the fake writes no loss log; what matters is what it was started with
        launchers.run_launch(launch, timeout_s=60)
    assert f"DO_PROFILER=1 PROF={tmp_path / 'out' / 'profiling'}" in launch.console.read_text()
    with pytest.raises(ValueError, match="profile applies to the external launchers"):
        TrainingSpec.model_validate({"profile": True})
