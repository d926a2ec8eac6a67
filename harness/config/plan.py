"""Plans: which model, how to serve it, and what each suite runs.

A plan is a YAML file under fixtures/plans/. Server keys keep `vllm serve`'s option names (dashes included) so a
command line can be pasted into a plan and back. `load_plan` validates the whole file into frozen objects and
raises a PlanError naming the file, the key and the fix; `Plan.check_runnable` adds the checks that depend on this
machine (does the model path exist?) and runs before any server starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, PrivateAttr, ValidationError, model_validator

from harness.config.ab import ABSpec
from harness.config.base import Frozen
from harness.config.container import ContainerSpec, check_target
from harness.config.deployment import DeploymentSpec
from harness.config.errors import did_you_mean, plan_error_from
from harness.config.gates import GatesSpec
from harness.config.model import ModelSpec
from harness.config.nodes import NodesSpec
from harness.config.suites import SuitesSpec
from harness.errors import HarnessError, PlanError
from harness.runtime.affinity import placement_problem
from harness.runtime.leases import DEVICE_FILES, absent_cards

PlatformName = Literal["cpu", "gpu", "npu"]
PLATFORMS: tuple[PlatformName, ...] = ("npu", "gpu", "cpu")


class ServerSpec(Frozen):
    """Arguments of `vllm serve`, under its own option names, plus how the harness runs it."""

    served_model_name: str | None = None
    tensor_parallel_size: int = Field(1, ge=1, le=64)
    pipeline_parallel_size: int = Field(1, ge=1, le=64)
    data_parallel_size: int = Field(1, ge=1, le=64)
    max_model_len: int | None = Field(None, ge=16)
    max_num_seqs: int | None = Field(None, ge=1)
    max_num_batched_tokens: int | None = Field(None, ge=16)
    dtype: Literal["auto", "half", "float16", "bfloat16", "float", "float32"] = "auto"
    quantization: str | None = None
    kv_cache_dtype: Literal["auto", "fp8", "fp8_e4m3", "fp8_e5m2", "int8"] = "auto"
    enable_prefix_caching: bool | None = None
    speculative_config: dict[str, Any] | None = None
    kv_transfer_config: dict[str, Any] | None = None
    port: int | None = Field(None, ge=1, le=65535, description="fixed port; by default a free one is picked")
    extra_args: tuple[str, ...] = ()
    devices: tuple[int, ...] | None = Field(
        None, description="NPU/GPU ids the harness may lease for this server (tensor x pipeline size of them)"
    )
    env: dict[str, str] = Field(default_factory=dict)
    nice: int = Field(
        0, ge=0, le=19, description="run the server below the harness's CPU priority, so its client is never starved"
    )
    cpus: tuple[int, ...] | None = Field(
        None,
        description="cores the server's processes may run on (Linux affinity; its engine threads are placed by the "
        "platform's own setting, e.g. VLLM_CPU_OMP_THREADS_BIND)",
    )
    startup_timeout_s: float = Field(600.0, gt=0, le=7200)
    nodes: NodesSpec | None = Field(None, description="one server spanning nodes (harness.config.nodes)")

    @model_validator(mode="after")
    def _batched_tokens_fit(self) -> ServerSpec:
        batched, seqs = self.max_num_batched_tokens, self.max_num_seqs
        if batched is not None and seqs is not None and batched < seqs:
            raise ValueError("max-num-batched-tokens must be at least max-num-seqs")
        needed = self.tensor_parallel_size * self.pipeline_parallel_size
        if self.devices is not None and (len(set(self.devices)) != len(self.devices) or len(self.devices) < needed):
            raise ValueError(f"devices must be distinct ids, at least tensor x pipeline parallel size ({needed})")
        if self.cpus is not None and (not self.cpus or min(self.cpus) < 0 or len(set(self.cpus)) != len(self.cpus)):
            raise ValueError("cpus must be a non-empty list of distinct core numbers, e.g. [1]")
        for arg in self.extra_args:
            if not isinstance(arg, str) or not arg:
                raise ValueError("extra-args must be a list of non-empty strings, e.g. ['--seed', '0']")
        if self.nodes is not None:
            self.nodes.check_world(needed * self.data_parallel_size)
        return self


class Plan(Frozen):
    """A validated plan; `source` is the file it came from."""

    name: str
    platform: PlatformName
    description: str = ""
    model: ModelSpec
    server: ServerSpec = ServerSpec()
    suites: SuitesSpec = SuitesSpec()
    deployment: DeploymentSpec | None = None
    container: ContainerSpec | None = None
    gates: GatesSpec = GatesSpec()
    ab: ABSpec | None = None
    _source: str = PrivateAttr("")

    @model_validator(mode="after")
    def _cases_fit_the_context(self) -> Plan:
        """Static and prefix cases must fit max-model-len: found here, not after a server has started."""
        limit = self.server.max_model_len
        if limit is None:
            return self
        s = self.suites
        asked: list[tuple[str, int, int]] = []
        if s.static:
            asked += [("static", p, o) for p, o in zip(s.static.prompt_tokens, s.static.output_tokens, strict=True)]
        if s.prefix:
            asked.append(("prefix", s.prefix.prompt_tokens, s.prefix.output_tokens))
        if s.multimodal:
            asked.append(("multimodal", s.multimodal.prompt_tokens, s.multimodal.output_tokens))
        for suite, prompt, output in asked:
            if prompt + output > limit:
                raise ValueError(
                    f"suites.{suite}: prompt-tokens {prompt} + output-tokens {output} exceed server.max-model-len "
                    f"{limit}; shorten the case or raise max-model-len"
                )
        return self

    @model_validator(mode="after")
    def _trained_needs_training(self) -> Plan:
        tiny, training = self.model.tiny, self.suites.training
        if tiny is not None and tiny.trained and (training is None or training.launcher == "mindspeed"):
            raise ValueError(
                "model.tiny.trained serves the checkpoint of the plan's own training run: add a suites.training "
                "section with launcher tiny or llamafactory (whose checkpoints vLLM loads), or set trained: false"
            )
        return self

    @model_validator(mode="after")
    def _eagle_draft_is_served(self) -> Plan:
        tiny, speculative = self.model.tiny, self.server.speculative_config
        if tiny is None or tiny.eagle is None:
            return self
        if not speculative or speculative.get("method") != "eagle" or "model" in speculative:
            raise ValueError(
                "model.tiny.eagle trains a draft head the server uses: set server.speculative-config to "
                "{method: eagle, num_speculative_tokens: K} without a model (the harness fills in the draft's path)"
            )
        if tiny.vision is not None:
            raise ValueError("model.tiny.eagle drafts for the text model: leave out vision")
        return self

    @property
    def serves_external_training(self) -> bool:
        """The served model is the checkpoint an external launcher (LLaMA-Factory) leaves in this session's run."""
        training = self.suites.training
        return bool(self.model.tiny and self.model.tiny.trained and training and training.launcher != "tiny")

    @model_validator(mode="after")
    def _container_and_quant(self) -> Plan:
        """The model must not hide the container image's home; quantisation variants must be valid servers."""
        nodes = self.server.nodes
        if self.container is not None and nodes is not None and nodes.local != (0,):
            raise ValueError("server.nodes.local must be [0] with a container: each node starts its own container")
        if self.container is not None and self.model.path is not None and Path(self.model.path).is_absolute():
            # The model folder is mounted read-only at its own path (harness.runtime.container.host_mounts).
            try:
                check_target(str(self.model.path))
            except ValueError as exc:
                raise ValueError(f"model.path: {exc}") from None
        variants: list[tuple[str, dict[str, Any]]] = []
        if self.suites.quant is not None:
            variants += [
                (f"suites.quant.{side}", getattr(self.suites.quant, side)) for side in ("reference", "candidate")
            ]
        if self.ab is not None:
            variants.append(("ab.reference.server", self.ab.reference.server))
            variants += [
                (f"ab.comparisons.{i}.candidate.server", c.candidate.server) for i, c in enumerate(self.ab.comparisons)
            ]
        for where, overrides in variants:
            try:
                ServerSpec.model_validate({**self.server.model_dump(by_alias=True), **overrides})
            except ValidationError as exc:
                first = exc.errors()[0]
                key = ".".join(str(part) for part in first["loc"])
                if first["type"] == "extra_forbidden":
                    known = [f.alias or n for n, f in ServerSpec.model_fields.items()]
                    hint = did_you_mean(key, known)
                    raise ValueError(f"{where}.{key}: not a server option the plan knows ({hint})") from exc
                raise ValueError(f"{where}.{key}: {first['msg']}") from exc
        return self

    @property
    def source(self) -> str:
        """The plan file this plan was read from."""
        return self._source

    def relative(self, given: str) -> Path:
        """A path from the plan, resolved against the plan's own folder."""
        path = Path(given).expanduser()
        return path if path.is_absolute() else (Path(self.source).parent / path).resolve()

    def server_with(self, overrides: dict[str, Any]) -> Plan:
        """This plan with `overrides` (vllm serve names) applied to its server section, validated."""
        merged = {**self.server.model_dump(by_alias=True), **overrides}
        try:
            server = ServerSpec.model_validate(merged)
        except ValidationError as exc:
            raise plan_error_from(exc, self.source, ServerSpec) from exc
        plan = self.model_copy(update={"server": server})
        plan._source = self._source
        return plan

    def with_model(self, path: Path, served_name: str | None = None) -> Plan:
        """This plan serving the model folder `path` (a trained checkpoint, say), optionally under another name."""
        plan = self.model_copy(update={"model": self.model.model_copy(update={"path": str(path), "tiny": None})})
        plan._source = self._source
        return plan.server_with({"served-model-name": served_name}) if served_name else plan

    def baseline_path(self) -> Path:
        """The plan's run baseline: `gates.baseline`, else fixtures/baselines/runs/<name>.yaml beside the plans."""
        given = self.gates.baseline or f"../baselines/runs/{self.name}.yaml"
        return self.relative(given)

    def model_path(self) -> Path | None:
        """The model directory a `path` plan names, resolved against the plan's own folder."""
        return None if self.model.path is None else self.relative(self.model.path)

    def check_single_server(self, command: str) -> None:
        """A command that starts one server cannot start a P/D plan's deployment: it would start one instance with
        the shared kv-transfer-config. Said before anything starts."""
        if self.deployment is not None:
            raise HarnessError(
                f"{self.source} is a prefill/decode deployment: `llmqual {command}` starts one server and cannot "
                "run it. Start it with `llmqual deploy up --plan FILE`, or run the suites with pytest --plan FILE"
            )

    def check_runnable(self) -> None:
        """Checks that depend on this machine; run before any server is started."""
        path = self.model_path()
        if path is not None and not (path / "config.json").is_file():
            raise PlanError(
                self.source,
                "model.path",
                f"no model directory with a config.json at {path}",
                "point model.path at a downloaded Hugging Face model folder (relative paths start at the plan)",
            )
        if self.gates.baseline is not None and not self.baseline_path().is_file():
            raise PlanError(
                self.source,
                "gates.baseline",
                f"no baseline file at {self.baseline_path()}",
                "record one with `llmqual baseline update RUN --out FILE`, fix the path (relative to the plan), or "
                "remove the key to gate against nothing",
            )
        absent = absent_cards(self.platform, self.server.devices or ())
        if absent:
            raise PlanError(
                self.source,
                "server.devices",
                f"cards {absent} are not on this node (no {DEVICE_FILES[self.platform].format(absent[0])} in /dev)",
                "list the node's cards (`npu-smi info -l` or `nvidia-smi -L`), or remove the key",
            )
        placed = [("server.cpus", self.server.cpus), ("suites.load.client-cpus", self.suites.load.client_cpus)]
        for key, cpus in placed:
            problem = placement_problem(cpus)
            if problem:
                raise PlanError(
                    self.source,
                    key,
                    problem,
                    "list cores from that set, or remove the key to let the scheduler place the work",
                )
        accuracy = self.suites.accuracy
        if accuracy is not None and accuracy.baselines is not None and not self.relative(accuracy.baselines).is_file():
            raise PlanError(
                self.source,
                "suites.accuracy.baselines",
                f"no accuracy baseline file at {self.relative(accuracy.baselines)}",
                "fix the path (relative to the plan) or remove the key to report scores without a baseline",
            )


def load_plan(path: str | Path) -> Plan:
    """Read and validate a plan file; every problem is reported as a PlanError before anything runs."""
    shown = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PlanError(shown, "", f"cannot read the plan: {exc.strerror}", "pass an existing file to --plan") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PlanError(shown, "", f"not valid YAML: {exc}", "fix the YAML syntax at the position shown") from exc
    if not isinstance(data, dict):
        raise PlanError(shown, "", "the plan must be a YAML mapping", "start from fixtures/plans/cpu-tiny.yaml")
    try:
        plan = Plan.model_validate(data)
    except ValidationError as exc:
        raise plan_error_from(exc, shown, Plan) from exc
    plan._source = shown
    return plan
