"""The training suite's plan section: which launcher trains, what its curve must show, what it is compared with.

`launcher: tiny` is the embedded CPU default (transformers' Trainer on the tiny model); `llamafactory` and
`mindspeed` run the frameworks Ascend clusters train with, from a YAML or a shell script the harness writes.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from harness.config.base import Frozen


class ThroughputSpec(Frozen):
    """What tokens/s/card needs beyond the log: the sequence length, the card count, the global batch size when
    the log does not print it. Without `seq-len` the log's own token counts are used (transformers, LLaMA-Factory)."""

    seq_len: int | None = Field(None, ge=1)
    cards: int = Field(1, ge=1)
    global_batch_size: int | None = Field(None, ge=1)
    warmup_steps: int = Field(5, ge=0, description="iterations left out of the average (compilation, caches)")


class LlamaFactoryDataSpec(Frozen):
    """A data file LLaMA-Factory reads through a `dataset_info.json` the harness writes beside its YAML: the plan's
    file (`path`), or the harness's own synthetic SFT data (`synthetic: arithmetic`, the facts the offline accuracy
    tasks ask, written as Alpaca records in the tasks' question/answer template)."""

    path: str | None = None
    synthetic: Literal["arithmetic"] | None = None
    formatting: Literal["alpaca", "sharegpt"] = "alpaca"
    ranking: bool = Field(False, description="preference pairs (chosen/rejected): for dpo and rm")

    @model_validator(mode="after")
    def _one_source(self) -> LlamaFactoryDataSpec:
        if (self.path is None) == (self.synthetic is None):
            raise ValueError("give exactly one of path (a data file) and synthetic (arithmetic)")
        if self.synthetic is not None and (self.formatting != "alpaca" or self.ranking):
            raise ValueError("synthetic data is Alpaca SFT records: formatting alpaca, ranking false")
        return self


class LlamaFactorySpec(Frozen):
    """`llamafactory-cli train <yaml>`: the YAML is built from these keys (LLaMA-Factory's own names)."""

    stage: Literal["sft", "dpo", "ppo", "rm", "pt"] = "sft"
    finetuning_type: Literal["full", "lora", "freeze"] = "full"
    lora_rank: int = Field(8, ge=1)
    lora_target: str = "all"
    deepspeed_zero: Literal[0, 1, 2, 3] = Field(0, description="0: no DeepSpeed; 1-3: a ZeRO stage config")
    precision: Literal["bf16", "fp16", "fp32"] = "bf16"
    template: str
    cutoff_len: int = Field(2048, ge=8)
    dataset: str | None = Field(None, description="dataset names registered in dataset-dir")
    dataset_dir: str | None = None
    data: LlamaFactoryDataSpec | None = None
    per_device_train_batch_size: int = Field(1, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    learning_rate: float = Field(1e-5, gt=0)
    num_train_epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, ge=1)
    logging_steps: int = Field(10, ge=1)
    save_steps: int = Field(500, ge=1)
    reward_model: str | None = Field(None, description="required by stage ppo")
    pref_beta: float = Field(0.1, gt=0)
    extra: dict[str, str | int | float | bool] = Field(default_factory=dict, description="further YAML keys")
    env: dict[str, str] = Field(
        default_factory=dict, description="variables of the training process (e.g. the CPU's reproducible kernels)"
    )
    command: list[str] = Field(
        default_factory=lambda: ["llamafactory-cli", "train"],
        min_length=1,
        description="the CLI and its subcommand; a first word with a slash is a path relative to the plan",
    )

    @model_validator(mode="after")
    def _consistent(self) -> LlamaFactorySpec:
        if (self.dataset is None) == (self.data is None):
            raise ValueError("give exactly one of dataset (names in dataset-dir) and data (a file)")
        if self.stage == "ppo" and self.reward_model is None:
            raise ValueError("stage ppo needs reward-model")
        ranked = self.stage in ("dpo", "rm")
        if self.data is not None and self.data.ranking != ranked:
            raise ValueError(f"stage {self.stage} needs data.ranking: {str(ranked).lower()}")
        return self


class MindSpeedSpec(Frozen):
    """A MindSpeed-LLM / ModelLink shell script, run with its variables set from the plan.

    Those scripts assign their settings at the top (`CKPT_SAVE_DIR="your model save ckpt path"`, `TP=8`, ...);
    the harness runs a copy whose assignments of the names in `vars` are replaced, and exports them as well.
    """

    script: str
    workdir: str | None = Field(
        None, description="where the script runs (MindSpeed-LLM's checkout); default: its folder"
    )
    vars: dict[str, str | int | float] = Field(default_factory=dict)
    checkpoint_var: str = Field("CKPT_SAVE_DIR", description="the variable naming where checkpoints are saved")


class TrainingSpec(Frozen):
    """One training run (or a log of one made elsewhere) and what its curve must show."""

    launcher: Literal["tiny", "llamafactory", "mindspeed"] = "tiny"
    timeout_s: float = Field(4 * 3600.0, gt=0, description="deadline of an external launcher's whole run")
    # The embedded run (launcher: tiny).
    max_steps: int = Field(300, ge=10)
    batch_size: int = Field(16, ge=1)
    learning_rate: float = Field(3e-3, gt=0)
    warmup_steps: int = Field(10, ge=0)
    logging_steps: int = Field(5, ge=1)
    save_steps: int = Field(100, ge=1)
    seed: int = Field(0, ge=0)
    # External launchers.
    profile: bool = Field(False, description="DO_PROFILER=1 PROF_SAVE_PATH=<run>/training/<launcher>/profiling")
    llamafactory: LlamaFactorySpec | None = None
    mindspeed: MindSpeedSpec | None = None
    # What the curve must show.
    final_loss_below: float | None = Field(None, gt=0)
    min_relative_drop: float = Field(0.5, gt=0, lt=1)
    spike_factor: float = Field(6.0, gt=0, description="robust deviations above the recent median that make a spike")
    reference: str | None = Field(None, description="a reference loss curve (any log parse-log reads)")
    align_max_mre: float = Field(0.02, gt=0, description="mean relative error allowed against the reference")
    align_max_mae: float = Field(0.005, gt=0, description="mean absolute error allowed against the reference")
    throughput: ThroughputSpec = ThroughputSpec()
    resume_at: int | None = Field(None, ge=1, description="stop here, resume from the checkpoint, compare")
    resume_max_mre: float = Field(0.02, gt=0)
    eval_task: str | None = Field(None, description="accuracy task that training must improve")
    min_accuracy_gain: float = Field(0.1, ge=0)

    @model_validator(mode="after")
    def _launcher_configured(self) -> TrainingSpec:
        if self.launcher != "tiny" and getattr(self, self.launcher) is None:
            raise ValueError(f"launcher {self.launcher} needs a `{self.launcher}:` section")
        if self.profile and self.launcher == "tiny":
            raise ValueError("profile applies to the external launchers (llamafactory, mindspeed), not the tiny run")
        if self.resume_at is not None and (self.resume_at >= self.max_steps or self.resume_at % self.save_steps):
            raise ValueError("resume-at must be a multiple of save-steps below max-steps (a saved checkpoint)")
        return self
