"""LLaMA-Factory as a launcher: the YAML `llamafactory-cli train` reads (and a DeepSpeed config), the dataset and
its `dataset_info.json` (a file the plan names, or the harness's own synthetic data), and the Launch; checked before
anything runs (docs/training.md)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from harness.config.training import LlamaFactoryDataSpec, LlamaFactorySpec, TrainingSpec
from harness.training.instruct_data import sft_pairs
from harness.training.launch import Launch, LaunchConfigError, Resolve


def deepspeed_config(stage: int) -> dict[str, Any]:
    """A ZeRO config with the batch, clipping and precision left to the trainer ("auto")."""
    zero: dict[str, Any] = {"stage": stage, "overlap_comm": True, "contiguous_gradients": True}
    if stage == 3:
        zero |= {
            "sub_group_size": 1e9,
            "reduce_bucket_size": "auto",
            "stage3_prefetch_bucket_size": "auto",
            "stage3_param_persistence_threshold": "auto",
            "stage3_max_live_parameters": 1e9,
            "stage3_max_reuse_distance": 1e9,
            "stage3_gather_16bit_weights_on_model_save": True,
        }
    else:
        zero |= {"allgather_partitions": True, "reduce_scatter": True, "allgather_bucket_size": 5e8}
    return {
        "train_batch_size": "auto",
        "train_micro_batch_size_per_gpu": "auto",
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
        "zero_allow_untested_optimizer": True,
        "fp16": {"enabled": "auto", "loss_scale": 0, "loss_scale_window": 1000, "initial_scale_power": 16},
        "bf16": {"enabled": "auto"},
        "zero_optimization": zero,
    }


def llamafactory_config(spec: LlamaFactorySpec, model: Path, out: Path, seed: int) -> dict[str, Any]:
    """The `llamafactory-cli train` YAML, in LLaMA-Factory's own key names."""
    config: dict[str, Any] = {
        "model_name_or_path": str(model),
        "trust_remote_code": True,
        "stage": spec.stage,
        "do_train": True,
        "finetuning_type": spec.finetuning_type,
        "template": spec.template,
        "cutoff_len": spec.cutoff_len,
        "overwrite_cache": True,
        "output_dir": str(out),
        "overwrite_output_dir": True,
        "logging_steps": spec.logging_steps,
        "save_steps": spec.save_steps,
        "report_to": "none",
        "per_device_train_batch_size": spec.per_device_train_batch_size,
        "gradient_accumulation_steps": spec.gradient_accumulation_steps,
        "learning_rate": spec.learning_rate,
        "num_train_epochs": spec.num_train_epochs,
        "lr_scheduler_type": "cosine",
        "seed": seed,
    }
    if spec.max_steps is not None:
        config["max_steps"] = spec.max_steps
    if spec.precision != "fp32":
        config[spec.precision] = True
    if spec.finetuning_type == "lora":
        config |= {"lora_rank": spec.lora_rank, "lora_target": spec.lora_target}
    if spec.deepspeed_zero:
        config["deepspeed"] = str(out / f"ds_z{spec.deepspeed_zero}_config.json")
    if spec.stage == "dpo":
        config["pref_beta"] = spec.pref_beta
    if spec.stage == "ppo":
        config["reward_model"] = spec.reward_model
    if spec.data is not None:
        config |= {"dataset": "llmqual_data", "dataset_dir": str(out / "data")}
    else:
        config["dataset"] = spec.dataset
        if spec.dataset_dir is not None:
            config["dataset_dir"] = spec.dataset_dir
    return config | dict(spec.extra)


def _dataset_info(data_file: Path, formatting: str, ranking: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {"file_name": str(data_file), "formatting": formatting, "ranking": ranking}
    if formatting == "sharegpt":
        entry["columns"] = {"messages": "conversations"}
    return {"llmqual_data": entry}


def synthetic_records(name: str) -> list[dict[str, str]]:
    """The harness's own SFT data as Alpaca records: each prompt in the offline accuracy tasks' template, so a
    template that adds nothing (LLaMA-Factory's `empty`) trains on exactly what the tasks ask.

    Each answer ends with the newline the tasks stop generating at. `empty` appends no end-of-sequence token, so
    without it the model never learns where an answer ends: what it generates after the answer is untrained
    noise, and two engines' greedy continuations of it differed (" 768" against " 7 11": 11 of 100 answers)
    though both put 0.99 on the answer's own token."""
    if name != "arithmetic":  # unreachable: the plan's schema admits only these
        raise LaunchConfigError("llamafactory.data.synthetic", f"unknown data {name!r}", "use arithmetic")
    return [{"instruction": prompt, "input": "", "output": answer + "\n"} for prompt, answer in sft_pairs()]


def _data_file(data: LlamaFactoryDataSpec, resolve: Resolve, out: Path) -> Path:
    if data.synthetic is not None:
        written = out / "data" / f"{data.synthetic}.json"
        written.write_text(json.dumps(synthetic_records(data.synthetic), indent=1), encoding="utf-8")
        return written
    assert data.path is not None  # the schema demands path or synthetic
    data_file = resolve(data.path)
    if not data_file.is_file():
        raise LaunchConfigError("llamafactory.data.path", f"no file {data_file}", "point it at the data file")
    return data_file


def _command(argv: list[str], resolve: Resolve) -> list[str]:
    """The plan's command with a first word that is a path (it has a slash) resolved against the plan's folder."""
    head = argv[0]
    return [str(resolve(head)) if "/" in head and not head.startswith("/") else head, *argv[1:]]


def llamafactory_launch(training: TrainingSpec, model: Path, resolve: Resolve, out: Path) -> Launch:
    """The launch and the files it reads, as paths: nothing is checked or written (a rehearsal shows this)."""
    spec = training.llamafactory
    if spec is None:
        raise LaunchConfigError("llamafactory", "missing", "add the section or choose another launcher")
    written = [out / "llamafactory.yaml"]
    if spec.data is not None:
        written.append(out / "data" / "dataset_info.json")
        if spec.data.synthetic is not None:
            written.append(out / "data" / f"{spec.data.synthetic}.json")
    if spec.deepspeed_zero:
        written.append(out / f"ds_z{spec.deepspeed_zero}_config.json")
    # LLaMA-Factory starts DeepSpeed runs through torchrun only when asked to.
    env = dict(spec.env) | ({"FORCE_TORCHRUN": "1"} if spec.deepspeed_zero else {})
    return Launch(
        "llamafactory",
        [*_command(spec.command, resolve), str(written[0])],
        env,
        out,
        out / "console.log",
        out / "trainer_log.jsonl",
        "llamafactory",
        out,
        tuple(written),
        spec.max_steps,  # None: epochs decide; the trainer_state.json it writes says how many (run_launch)
    )


def prepare_llamafactory(training: TrainingSpec, model: Path, resolve: Resolve, out: Path) -> Launch:
    launch = llamafactory_launch(training, model, resolve, out)
    spec = training.llamafactory
    assert spec is not None  # llamafactory_launch refused a missing section
    if shutil.which(launch.argv[0]) is None:
        raise LaunchConfigError(
            "llamafactory.command",
            f"{launch.argv[0]!r} is not an executable (or not on PATH)",
            "install LLaMA-Factory (on the CPU: scripts/bootstrap-tool llamafactory) or give the CLI's full path",
        )
    if not (model / "config.json").is_file():
        raise LaunchConfigError("llamafactory", f"no model with a config.json at {model}", "fix model.path")
    out.mkdir(parents=True, exist_ok=True)
    config = llamafactory_config(spec, model, out, training.seed)
    if spec.data is None and spec.dataset_dir is not None:
        config["dataset_dir"] = str(resolve(spec.dataset_dir))
    if spec.data is not None:
        (out / "data").mkdir(exist_ok=True)
        data_file = _data_file(spec.data, resolve, out)
        info = out / "data" / "dataset_info.json"
        info.write_text(json.dumps(_dataset_info(data_file, spec.data.formatting, spec.data.ranking), indent=2))
    if spec.deepspeed_zero:
        ds = out / f"ds_z{spec.deepspeed_zero}_config.json"
        ds.write_text(json.dumps(deepspeed_config(spec.deepspeed_zero), indent=2))
    launch.written[0].write_text(yaml.safe_dump(config, sort_keys=False))
    return launch
