"""Diffusion suite: text-to-image latency per image and images/s for each resolution x steps x batch case of the
plan, through diffusers' pipeline (the tiny Flux built here on the CPU, the plan's model on NPU/GPU) and, with
--comfyui-url, through a running ComfyUI server. Measured under harness.diffusion.protocol (warm-up excluded,
repeated windows, fresh prompts for every call) and gated on the plan's baseline like the serving cases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.config.diffusion import DiffusionSpec
from harness.config.plan import Plan
from harness.diffusion.cases import DiffusionCase, model_folder
from harness.diffusion.comfyui import ComfyUIClient, ComfyUIError, Workflow, run_comfyui_case
from harness.diffusion.pipeline import DiffusionError, run_pipeline_case
from harness.diffusion.protocol import call_slots, summarise
from harness.paths import inside
from harness.plugins.recording import RecordCase
from harness.results.case import CaseResult
from harness.run import Run

pytestmark = pytest.mark.diffusion


def _spec(plan: Plan) -> DiffusionSpec:
    spec = plan.suites.diffusion
    assert spec is not None  # the case came from it
    return spec


def _config(spec: DiffusionSpec, case: DiffusionCase, repeats: int, engine: str) -> dict[str, Any]:
    return {
        "engine": engine,
        "height": case.height,
        "width": case.width,
        "steps": case.steps,
        "batch": case.batch,
        "guidance_scale": spec.guidance_scale,
        "max_sequence_length": spec.max_sequence_length,
        "dtype": spec.dtype,
        "warmup_calls": spec.warmup_calls,
        "calls_per_repeat": spec.calls,
        "repeats": repeats,
    }


def test_text_to_image(
    plan: Plan,
    diffusion_case: DiffusionCase,
    model_cache: Path,
    llmqual_run: Run,
    record_case: RecordCase,
    repeats: int,
) -> None:
    spec, case = _spec(plan), diffusion_case
    folder = inside(llmqual_run.directory, "diffusion", "t2i", case.id)  # beside the sink's <case>.json
    slots = call_slots(case, spec, repeats)
    model = model_folder(plan, spec)
    try:
        loaded, calls = run_pipeline_case(
            case, spec, slots, model, model_cache, plan.platform, folder, devices=plan.server.devices or ()
        )
    except DiffusionError as exc:
        pytest.fail(str(exc), pytrace=False)
    metrics, windows, reasons = summarise(calls, case, repeats)
    sample = folder / "sample.png"
    config = _config(spec, case, repeats, f"diffusers {loaded['pipeline']}") | {
        "model": str(model) if model else "tiny-flux (built here)",
        "device": loaded["device"],
        "events": str((folder / "events.jsonl").relative_to(llmqual_run.directory)),
        "sample": str(sample.relative_to(llmqual_run.directory)) if sample.is_file() else None,
    }
    record_case(
        CaseResult(
            suite="diffusion.t2i",
            case_id=case.id,
            config=config,
            metrics=metrics | {"load_s": loaded["seconds"]},
            repeats=windows,
            invalid_reasons=reasons,
        )
    )
    assert not reasons, "; ".join(reasons)
    assert metrics["images"] == case.batch * spec.calls * repeats


@pytest.mark.suite("diffusion.comfyui")  # skipped without --comfyui-url: not a t2i case
def test_comfyui(
    plan: Plan,
    diffusion_case: DiffusionCase,
    comfyui: tuple[ComfyUIClient, Workflow],
    llmqual_run: Run,
    record_case: RecordCase,
    repeats: int,
) -> None:
    spec, case = _spec(plan), diffusion_case
    assert spec.comfyui is not None  # the comfyui fixture skips otherwise
    client, workflow = comfyui
    events = inside(llmqual_run.directory, "diffusion", "comfyui", case.id) / "events.jsonl"
    slots = call_slots(case, spec, repeats)
    try:
        calls = run_comfyui_case(
            client, workflow, case, slots, spec.seed, spec.comfyui.timeout_s, spec.comfyui.poll_s, events
        )
    except ComfyUIError as exc:
        pytest.fail(f"{case.id}: {exc} (the calls so far are in {events})", pytrace=False)
    metrics, windows, reasons = summarise(calls, case, repeats, workflow.guarded)
    config = _config(spec, case, repeats, "comfyui") | {
        "workflow": spec.comfyui.workflow,
        "events": str(events.relative_to(llmqual_run.directory)),
    }
    record_case(
        CaseResult(
            suite="diffusion.comfyui",
            case_id=case.id,
            config=config,
            metrics=metrics,
            repeats=windows,
            invalid_reasons=reasons,
        )
    )
    assert not reasons, "; ".join(reasons)
