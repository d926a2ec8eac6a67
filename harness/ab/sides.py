"""The two builds of an A/B comparison as server configurations, checked before any server starts.

A side changes the plan's server with `vllm serve` options and environment variables, and may serve another model
folder, run in another container image, or serve with another Python environment (its interpreter, or a vLLM
release the harness installs, harness.runtime.venvs). Everything a side names is checked here, naming the plan key
and the fix: the model folder has a config.json, the image is on the node, the environment has vLLM (and which
release); a comparison that expects a planted fault must plant one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from harness.config.ab import ABSide
from harness.config.plan import Plan
from harness.errors import HarnessError, PlanError
from harness.runtime.container import require_image
from harness.runtime.image import is_base_image
from harness.runtime.venvs import inspect, package_of, release_environment
from harness.served import serving_config
from harness.server.vllm import ServerConfig


@dataclass(frozen=True)
class Build:
    """One side, ready to start: its server configuration and what it is."""

    config: ServerConfig
    description: str
    vllm_version: str | None = None  # the release that serves, when the side names an environment
    unmet: tuple[str, ...] = ()  # that release's requirements the shared packages do not meet

    def as_json(self) -> dict[str, object]:
        return {"build": self.description, "vllm_version": self.vllm_version, "unmet_requirements": list(self.unmet)}


def build_of(plan: Plan, side: ABSide, where: str, model: Path, cache: Path, label: str = "") -> Build:
    """The server of `side` (at plan key `where`), serving `model` unless the side names its own."""
    overrides = dict(side.server)
    if side.env:
        overrides["env"] = {**plan.server.env, **side.env}
    try:
        side_plan = plan.server_with(overrides) if overrides else plan
    except PlanError as exc:
        raise PlanError(plan.source, f"{where}.server.{exc.key}", exc.problem, exc.fix) from None
    if side.model_path is not None:
        model = plan.relative(side.model_path)
        if not (model / "config.json").is_file():
            raise PlanError(
                plan.source, f"{where}.model-path", f"no model folder with a config.json at {model}",
                "name a Hugging Face model folder (relative paths start at the plan)",
            )  # fmt: skip
    config = dataclasses.replace(serving_config(side_plan, model, cache), label=label)
    if side.image is not None:
        if config.container is None:
            raise PlanError(
                plan.source, f"{where}.image", "the plan runs its server without a container",
                "add a container: section to the plan, or compare environments with python: or vllm:",
            )  # fmt: skip
        if not is_base_image(side.image):
            try:
                require_image(side.image)
            except HarnessError as exc:
                raise PlanError(plan.source, f"{where}.image", str(exc)) from None
        config = dataclasses.replace(config, container=config.container.model_copy(update={"image": side.image}))
    version: str | None = None
    unmet: tuple[str, ...] = ()
    try:
        if side.vllm is not None:
            env = release_environment(plan.platform, side.vllm, cache)
            config = dataclasses.replace(config, python=str(env.python))
            version, unmet = env.version, env.unmet
        elif side.python is not None:
            python = Path(side.python).expanduser()
            version, unmet = inspect(python, package_of(plan.platform))
            config = dataclasses.replace(config, python=str(python))
    except HarnessError as exc:
        key = f"{where}.vllm" if side.vllm is not None else f"{where}.python"
        raise PlanError(plan.source, key, str(exc)) from None
    if config.python and config.container is not None and not config.container.host_environment:
        raise PlanError(
            plan.source, where, "names a Python environment, but the plan's server runs in its container's own",
            "compare container images with image:, or set container.host-environment",
        )  # fmt: skip
    return Build(config, side.describe(), version, unmet)
