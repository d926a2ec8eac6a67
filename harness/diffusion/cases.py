"""The diffusion suite's cases: every resolution x steps x batch size of the plan, checked against what the
pipeline can make before anything runs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from harness.config.diffusion import DiffusionSpec, parse_resolution
from harness.config.plan import Plan
from harness.diffusion.tiny_flux import tiny_flux_multiple
from harness.errors import PlanError


@dataclass(frozen=True)
class DiffusionCase:
    height: int
    width: int
    steps: int
    batch: int

    @property
    def id(self) -> str:
        return f"h{self.height}-w{self.width}-s{self.steps}-b{self.batch}"


def model_folder(plan: Plan, spec: DiffusionSpec) -> Path | None:
    """The plan's diffusers folder; None for the tiny Flux (built in the worker)."""
    return None if spec.model == "tiny" else plan.relative(spec.model)


def side_multiple(plan: Plan, spec: DiffusionSpec) -> int:
    """What each image side must be a multiple of: twice the VAE's scale factor (2 ** (blocks - 1)), since Flux
    packs its latents in 2x2 patches. Read from the model's `vae/config.json`."""
    folder = model_folder(plan, spec)
    if folder is None:
        return tiny_flux_multiple()
    config = folder / "vae" / "config.json"
    try:
        blocks = json.loads(config.read_text(encoding="utf-8"))["block_out_channels"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PlanError(
            plan.source,
            "suites.diffusion.model",
            f"cannot read the VAE's block_out_channels from {config}: {exc}",
            "point it at a diffusers pipeline folder (model_index.json, vae/, transformer/, ...)",
        ) from exc
    return 1 << len(blocks)  # 2 x 2 ** (blocks - 1)


def plan_diffusion_cases(plan: Plan) -> list[DiffusionCase]:
    """The plan's cases in resolution, steps, batch order; a side the pipeline cannot make is a PlanError naming
    `suites.diffusion.resolutions` (diffusers would silently make a smaller image)."""
    spec = plan.suites.diffusion
    if spec is None:
        return []
    multiple = side_multiple(plan, spec)
    cases = []
    for text in spec.resolutions:
        height, width = parse_resolution(text)
        if height % multiple or width % multiple:
            fix_h, fix_w = max(multiple, height - height % multiple), max(multiple, width - width % multiple)
            raise PlanError(
                plan.source,
                "suites.diffusion.resolutions",
                f"{text}: the pipeline makes sides in multiples of {multiple} (2 x its VAE's scale factor)",
                f"use {fix_h}x{fix_w}",
            )
        cases += [DiffusionCase(height, width, s, b) for s in spec.steps for b in spec.batch_sizes]
    return cases
