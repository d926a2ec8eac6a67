"""What each suite runs, as a plan states it under `suites:`. Keys follow the benchmark tools' option names."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from harness.config.base import Frozen
from harness.config.capacity import CapacitySpec
from harness.config.diffusion import DiffusionSpec
from harness.config.sla import SLASpec
from harness.config.training import TrainingSpec
from harness.config.workloads import ConsistencySpec, MultimodalSpec, PrefixSpec, ReplaySpec, SessionsSpec


class SmokeSpec(Frozen):
    """What the smoke suite asks of the server."""

    max_tokens: int = Field(16, ge=2, le=4096)
    request_timeout_s: float = Field(120.0, gt=0)


class SLOSpec(Frozen):
    """Goodput objectives in milliseconds; omit one to leave it unconstrained."""

    ttft_ms: float | None = Field(None, gt=0)
    tpot_ms: float | None = Field(None, gt=0)
    e2el_ms: float | None = Field(None, gt=0)


class LoadSpec(Frozen):
    """How the client sends and judges itself; shared by every serving case. Its defaults are the defaults of
    `llmqual bench` too (harness.bench.command builds one from its options)."""

    endpoint_type: Literal["completions", "chat"] = "completions"
    ignore_eos: bool = True
    seed: int = Field(0, ge=0)
    request_timeout_s: float = Field(300.0, gt=0, description="no-progress timeout of one request")
    case_deadline_s: float = Field(3600.0, gt=0, description="deadline of one whole case")
    max_p99_lag_ms: float = Field(50.0, gt=0, description="a case whose p99 schedule lag is above this is invalid")
    min_rate_fraction: float = Field(
        0.95, gt=0, le=1, description="a case whose client sent under this fraction of its schedule's rate is invalid"
    )
    max_ttft_overhead: float = Field(
        0.25, gt=0, le=1, description="a case whose client mean TTFT exceeds the server's by this share is flagged"
    )
    save_records: bool = True
    # The measurement protocol (docs/measurement.md): warm-up before each case, and a window that means something.
    warmup_requests: int = Field(16, ge=0, description="requests before each case at its concurrency, not measured")
    min_requests: int = Field(0, ge=0, description="a repeat sends at least this many requests")
    min_seconds: float = Field(0.0, ge=0, description="a repeat lasts at least this long (from the warm-up's pace)")
    client_cpus: tuple[int, ...] | None = Field(
        None, min_length=1, description="cores the client runs on while it measures (Linux affinity)"
    )
    client_workers: int = Field(
        1, ge=1, le=256, description="processes one case's requests are sharded over, each on a client-cpus core"
    )


class StaticSpec(Frozen):
    """Closed loop: each parallel-num x (prompt-tokens[i], output-tokens[i]) pair, parallel-num x epochs requests."""

    parallel_num: tuple[int, ...] = Field((1, 4, 8), min_length=1)
    prompt_tokens: tuple[int, ...] = Field((1024,), min_length=1)
    output_tokens: tuple[int, ...] = Field((128,), min_length=1)
    epochs: int = Field(5, ge=1)

    @model_validator(mode="after")
    def _pairs(self) -> StaticSpec:
        if len(self.prompt_tokens) != len(self.output_tokens):
            raise ValueError(
                f"prompt-tokens has {len(self.prompt_tokens)} entries and output-tokens {len(self.output_tokens)}: "
                "they are paired one to one, give both lists the same length"
            )
        if min(self.parallel_num) < 1 or min(self.prompt_tokens) < 2 or min(self.output_tokens) < 1:
            raise ValueError("parallel-num and output-tokens must be at least 1, prompt-tokens at least 2")
        return self


class LengthSpec(Frozen):
    mean: float = Field(gt=0)
    std: float = Field(0.0, ge=0)
    min: int = Field(1, ge=1)
    max: int = Field(ge=1)


class GenerateSpec(Frozen):
    """A custom dataset the harness generates (as `llmqual dataset generate` would) and caches."""

    count: int = Field(ge=1, le=100_000)
    input: LengthSpec
    output: LengthSpec
    seed: int = Field(0, ge=0)


class DatasetSpec(Frozen):
    """A dataset file (`path`, relative to the plan), a generated one (`generate`), or random prompts."""

    type: Literal["random", "sharegpt", "alpaca", "custom", "human-eval"] = "random"
    path: str | None = None
    generate: GenerateSpec | None = None
    random_input_len: int = Field(1024, ge=2)
    random_output_len: int = Field(128, ge=1)

    @model_validator(mode="after")
    def _source(self) -> DatasetSpec:
        if self.type == "random" and (self.path or self.generate):
            raise ValueError("a random dataset takes random-input-len and random-output-len, not path or generate")
        if self.type != "random" and (self.path is None) == (self.generate is None):
            raise ValueError(f"a {self.type} dataset needs exactly one of 'path' or 'generate'")
        if self.generate is not None and self.type != "custom":
            raise ValueError("'generate' makes a custom dataset: set type: custom")
        return self


class DynamicSpec(Frozen):
    """Open loop: request-rate[i] with num-prompts[i] requests, Poisson (or gamma) arrivals."""

    dataset: DatasetSpec = DatasetSpec()
    request_rate: tuple[float, ...] = Field((1.0,), min_length=1)
    num_prompts: tuple[int, ...] = Field((100,), min_length=1)
    burstiness: float = Field(1.0, gt=0)
    max_concurrency: int | None = Field(None, ge=1)
    max_tokens: int | None = Field(None, ge=1)
    max_prompt_tokens: int | None = Field(None, ge=1)
    fixed_output_len: int | None = Field(None, ge=1)
    slo: SLOSpec = SLOSpec()

    @field_validator("request_rate")
    @classmethod
    def _rates(cls, rates: tuple[float, ...]) -> tuple[float, ...]:
        for rate in rates:
            problem = rate_problem(rate)
            if problem:
                raise ValueError(problem)
        return rates

    @field_validator("num_prompts")
    @classmethod
    def _counts(cls, counts: tuple[int, ...]) -> tuple[int, ...]:
        bad = [n for n in counts if n < 1]
        if bad:
            raise ValueError(f"{bad[0]} prompts: each case sends at least 1")
        return counts

    @model_validator(mode="after")
    def _pairs(self) -> DynamicSpec:
        if len(self.request_rate) != len(self.num_prompts):
            raise ValueError(
                f"request-rate has {len(self.request_rate)} entries and num-prompts {len(self.num_prompts)}: "
                "they are paired one to one, give both lists the same length"
            )
        return self


def rate_problem(rate: float) -> str | None:
    """Why `rate` is not a request rate (the plan's and `llmqual bench`'s one rule), or None."""
    if rate > 0:  # NaN is not
        return None
    return f"{rate:g} is not a request rate: give requests per second above 0, or inf to send all at once"


class TaskSpec(Frozen):
    """One lm-eval task (or group) and how to run it."""

    name: str = Field(min_length=1)
    num_fewshot: int | None = Field(None, ge=0)
    limit: float | None = Field(None, gt=0, description="documents per task (a fraction below 1)")
    chat: bool = False

    @property
    def id(self) -> str:
        return self.name + (f"-{self.num_fewshot}shot" if self.num_fewshot is not None else "")


# lm-eval `vllm` model_args a plan may set under suites.accuracy.model-args (lm-eval's names, which for the engine
# are vLLM's LLM() names).
ENGINE_MODEL_ARGS = (
    "tensor_parallel_size",
    "data_parallel_size",
    "gpu_memory_utilization",
    "add_bos_token",
    "max_model_len",
    "dtype",
    "quantization",
    "trust_remote_code",
    "enforce_eager",
    "max_num_seqs",
    "kv_cache_dtype",
    "seed",
    "revision",
    "tokenizer",
)


class AccuracySpec(Frozen):
    """lm-eval through the served model (`model: served`), or with the model inside vLLM's engine under lm-eval
    (`model: vllm`, as `lm_eval --model vllm` runs): tasks, how to batch, where the offline tasks and baselines are."""

    tasks: tuple[TaskSpec, ...] = Field(min_length=1)
    model: Literal["served", "vllm"] = "served"
    model_args: dict[str, Any] = Field(
        default_factory=dict, description="lm-eval vllm model_args over the server's settings (model: vllm)"
    )
    engine_timeout_s: float = Field(3600.0, gt=0, description="deadline of one task's evaluation (model: vllm)")
    include_path: str | None = Field(None, description="folder of extra task YAMLs, relative to the plan")
    batch_size: int = Field(1, ge=1)
    num_concurrent: int = Field(4, ge=1)
    max_retries: int = Field(3, ge=0)
    timeout_s: int = Field(300, gt=0)
    log_samples: bool = False
    baselines: str | None = Field(None, description="baseline file, relative to the plan")
    k: float = Field(2.0, ge=0, description="a regression must exceed k x stderr ...")
    floor: float = Field(0.01, ge=0, description="... and this absolute drop")

    @model_validator(mode="after")
    def _known_model_args(self) -> AccuracySpec:
        unknown = sorted(set(self.model_args) - set(ENGINE_MODEL_ARGS))
        if unknown:
            raise ValueError(f"model-args {unknown} unknown; lm-eval's vllm model takes {', '.join(ENGINE_MODEL_ARGS)}")
        if self.model_args and self.model != "vllm":
            raise ValueError("model-args apply to model: vllm (the served model takes the server section's settings)")
        if "pretrained" in self.model_args:
            raise ValueError("the model is the plan's model (model:), not a model-arg")
        return self


class QuantSpec(Frozen):
    """Accuracy of a quantised configuration against a reference one, on the same tasks.

    `reference` and `candidate` are server overrides (vllm serve names) applied on top of the plan's server.
    The candidate fails when a metric drops by more than max(k x stderr of the difference, floor).
    """

    tasks: tuple[TaskSpec, ...] = Field(min_length=1)
    reference: dict[str, Any] = Field(default_factory=dict)
    candidate: dict[str, Any] = Field(min_length=1)
    k: float = Field(2.0, ge=0)
    floor: float = Field(0.02, ge=0)


class PreflightSpec(Frozen):
    """What the preflight suite expects of an Ascend node."""

    npu_count: int | None = Field(None, ge=1, description="cards npu-smi must list")
    min_free_hbm_mb: float = Field(0.0, ge=0, description="free HBM each of the plan's cards must have")
    smi_timeout_s: float = Field(30.0, gt=0)


class ProfileSpec(Frozen):
    """A profile of the server around one serving case (pytest's --profile CASE overrides `case`)."""

    case: str | None = Field(None, description="the static or dynamic case id to profile, e.g. p16-in64-out32")
    top: int = Field(20, ge=1, le=500, description="operators in the report's table, by self time")


class TelemetrySpec(Frozen):
    """Device telemetry sampled while each server of the run is up (harness.metrics.telemetry)."""

    enabled: bool = Field(True, description="sample npu-smi, NVML or the CPU server's processes; false: nothing")
    interval_s: float = Field(1.0, ge=0.05, le=60, description="seconds between readings")
    deadline_s: float = Field(43200.0, gt=0, description="sampling stops after this even if the server runs on")


class SuitesSpec(Frozen):
    smoke: SmokeSpec = SmokeSpec()
    load: LoadSpec = LoadSpec()
    static: StaticSpec | None = None
    dynamic: DynamicSpec | None = None
    prefix: PrefixSpec | None = None
    multimodal: MultimodalSpec | None = None
    replay: ReplaySpec | None = None
    sessions: SessionsSpec | None = None
    consistency: ConsistencySpec | None = None
    accuracy: AccuracySpec | None = None
    quant: QuantSpec | None = None
    preflight: PreflightSpec = PreflightSpec()
    training: TrainingSpec | None = None
    capacity: CapacitySpec | None = None
    sla: SLASpec | None = None
    diffusion: DiffusionSpec | None = None
    profile: ProfileSpec = ProfileSpec()
    telemetry: TelemetrySpec = TelemetrySpec()
