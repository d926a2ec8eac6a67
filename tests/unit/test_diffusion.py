"""The diffusion suite's pure parts: its plan section and cases, the measurement protocol, and the ComfyUI client
against a fake of ComfyUI's protocol (tests/fake_comfyui.py). The diffusers pipeline itself runs for real in the
main job (suites/diffusion) and in tests/integration/test_diffusion_real.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.config.diffusion import DiffusionSpec
from harness.config.plan import load_plan
from harness.diffusion.cases import DiffusionCase, plan_diffusion_cases
from harness.diffusion.comfyui import (
    ComfyUIClient,
    ComfyUIError,
    history_call,
    load_workflow,
    prepared,
    run_comfyui_case,
)
from harness.diffusion.pipeline import worker_card
from harness.diffusion.protocol import Call, call_slots, summarise
from harness.errors import PlanError
from harness.runtime.leases import DeviceLease, LeaseError
from tests.fake_comfyui import WORKFLOW, FakeComfyUI, fake_comfyui
from tests.fakes import in_thread

REPO = Path(__file__).resolve().parents[2]
PLAN = """
name: t
platform: cpu
model: {tiny: {hidden-size: 64, num-layers: 1, num-heads: 2, intermediate-size: 128}}
suites:
  diffusion:
"""


def plan_with(tmp_path: Path, section: str) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN + "".join(f"    {line}\n" for line in section.strip().splitlines()))
    return path


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ('resolutions: ["0x64"]', "each side must be between 1 and 8192"),
        ('resolutions: ["64*64"]', "is not HEIGHTxWIDTH"),
        ("steps: [0]", "at least 1"),
        ("batch-sizes: [2, 0]", "at least 1"),
        ("calls: 0", "greater than or equal to 1"),
    ],
)
def test_a_bad_diffusion_section_names_the_key(tmp_path: Path, section: str, message: str) -> None:
    with pytest.raises(PlanError) as info:
        load_plan(plan_with(tmp_path, section))
    assert f"suites.diffusion.{section.split(':')[0]}" in str(info.value)
    assert message in str(info.value)


def test_cases_are_the_grid_and_a_side_the_pipeline_cannot_make_is_refused(tmp_path: Path) -> None:
    plan = load_plan(plan_with(tmp_path, 'resolutions: ["64x64", "128x96"]\nsteps: [4, 8]\nbatch-sizes: [1, 2]'))
    cases = plan_diffusion_cases(plan)
    assert [c.id for c in cases[:4]] == ["h64-w64-s4-b1", "h64-w64-s4-b2", "h64-w64-s8-b1", "h64-w64-s8-b2"]
    assert len(cases) == 8
    # The tiny Flux's VAE has two blocks: sides in multiples of 4.
    plan = load_plan(plan_with(tmp_path, 'resolutions: ["66x64"]'))
    with pytest.raises(PlanError) as info:
        plan_diffusion_cases(plan)
    assert "suites.diffusion.resolutions: 66x64: the pipeline makes sides in multiples of 4" in str(info.value)
    assert "use 64x64" in str(info.value)


def test_a_model_folders_multiple_comes_from_its_vae(tmp_path: Path) -> None:
    model = tmp_path / "flux"
    (model / "vae").mkdir(parents=True)
    (model / "vae" / "config.json").write_text(json.dumps({"block_out_channels": [128, 256, 512, 512]}))
    plan = load_plan(plan_with(tmp_path, f'model: {model}\nresolutions: ["688x1024"]'))
    assert [c.id for c in plan_diffusion_cases(plan)] == ["h688-w1024-s4-b1"]  # FLUX.1-dev's VAE: multiples of 16
    plan = load_plan(plan_with(tmp_path, f'model: {model}\nresolutions: ["700x1024"]'))
    with pytest.raises(PlanError, match="multiples of 16"):
        plan_diffusion_cases(plan)
    plan = load_plan(plan_with(tmp_path, f'model: {tmp_path / "none"}\nresolutions: ["64x64"]'))
    with pytest.raises(PlanError, match=r"suites\.diffusion\.model: cannot read the VAE"):
        plan_diffusion_cases(plan)


CASE = DiffusionCase(64, 48, 4, 2)


def test_every_call_has_prompts_no_other_call_had() -> None:
    spec = DiffusionSpec.model_validate({"warmup-calls": 2, "calls": 5})
    slots = call_slots(CASE, spec, repeats=3)
    assert [s.phase for s in slots] == ["warmup"] * 2 + ["measure"] * 15
    assert [s.repeat for s in slots[2:]] == [0] * 5 + [1] * 5 + [2] * 5
    prompts = [p for s in slots for p in s.prompts]
    assert all(len(s.prompts) == CASE.batch for s in slots)
    assert len(set(prompts)) == len(prompts)
    assert call_slots(CASE, spec, repeats=3) == slots  # the same run again: the same prompts


def call(phase: str, repeat: int, seconds: float, images: int = 2, size: tuple[int, int] = (48, 64)) -> Call:
    return Call(phase, repeat, seconds, images, (size,) * images)


def test_summary_excludes_the_warm_up_and_gives_each_window_its_numbers() -> None:
    calls = [call("warmup", -1, 9.0), call("measure", 0, 1.0), call("measure", 0, 3.0), call("measure", 1, 2.0)]
    metrics, windows, reasons = summarise(calls, CASE, repeats=2)
    assert reasons == []
    assert metrics["mean_latency_per_image_ms"] == pytest.approx(1000.0)  # 500, 1500, 1000 ms per image
    assert metrics["median_latency_per_image_ms"] == pytest.approx(1000.0)
    assert metrics["max_latency_per_image_ms"] == pytest.approx(1500.0)
    assert metrics["images_per_s"] == pytest.approx(6 / 6.0)
    assert metrics["mean_warmup_call_ms"] == pytest.approx(9000.0)
    assert windows[0]["images_per_s"] == pytest.approx(4 / 4.0)
    assert windows[1]["mean_latency_per_image_ms"] == pytest.approx(1000.0)


def test_wrong_images_or_a_missing_window_make_the_case_invalid() -> None:
    calls = [call("measure", 0, 1.0, images=1), call("measure", 0, 1.0, size=(64, 64))]
    _, _, reasons = summarise(calls, CASE, repeats=2)
    assert "call 0 made 1 images, not 2" in reasons
    assert "call 1 made images of 64x64 (width x height), not the case's size" in reasons
    assert "2 calls measured; the case needs 2 windows" in reasons


def write_workflow(tmp_path: Path, graph: Any) -> Path:
    path = tmp_path / "workflow.json"
    path.write_text(json.dumps(graph))
    return path


def without(node: str, *inputs: str) -> dict[str, Any]:
    graph: dict[str, Any] = json.loads(json.dumps(WORKFLOW))
    for name in inputs:
        del graph[node]["inputs"][name]
    return graph


@pytest.mark.parametrize(
    ("graph", "message"),
    [
        ({"nodes": [], "links": []}, "the web UI's workflow format, not the API format"),
        ([1, 2], "not an API-format workflow"),
        (without("5", "batch_size"), "no node with inputs width, height, batch_size"),
        (WORKFLOW | {"10": WORKFLOW["5"]}, "2 nodes (5, 10) with inputs width, height, batch_size"),
        (without("3", "steps"), "no node with a steps input"),
        (without("3", "seed"), "no node with a seed or noise_seed input"),
    ],
)
def test_a_workflow_without_the_nodes_the_case_needs_is_refused(tmp_path: Path, graph: Any, message: str) -> None:
    with pytest.raises(PlanError) as info:
        load_workflow(write_workflow(tmp_path, graph), "plan.yaml")
    assert "plan.yaml: suites.diffusion.comfyui.workflow" in str(info.value)
    assert message in str(info.value)


def test_the_case_goes_into_the_workflow(tmp_path: Path) -> None:
    workflow = load_workflow(write_workflow(tmp_path, WORKFLOW), "plan.yaml")
    graph = prepared(workflow, CASE, seed=7, prompt="a red kite")
    assert graph["5"]["inputs"] == {"width": 48, "height": 64, "batch_size": 2}
    assert graph["3"]["inputs"]["steps"] == 4
    assert graph["3"]["inputs"]["seed"] == 7
    assert graph["6"]["inputs"]["text"] == "a red kite"
    assert graph["7"]["inputs"]["text"] == "blurry"  # no placeholder: left as written
    assert WORKFLOW["5"]["inputs"]["width"] == 512  # the loaded workflow is not changed


def run_fake(tmp_path: Path, mode: str, timeout_s: float = 10.0) -> list[Call]:
    workflow = load_workflow(write_workflow(tmp_path, WORKFLOW), "plan.yaml")
    spec = DiffusionSpec.model_validate({"warmup-calls": 1, "calls": 2})
    with in_thread(lambda: fake_comfyui(FakeComfyUI(mode))) as url:
        client = ComfyUIClient(url)
        slots = call_slots(CASE, spec, repeats=2)
        return run_comfyui_case(client, workflow, CASE, slots, 0, timeout_s, 0.01, tmp_path / "events.jsonl")


def test_comfyui_calls_are_timed_to_their_completed_history(tmp_path: Path) -> None:
    calls = run_fake(tmp_path, "ok")
    assert [c.images for c in calls] == [2] * 5
    # The fake works 5 ms per step and image: 40 ms per call; the client waits at least that.
    assert all(c.seconds >= 0.04 for c in calls)
    assert all(c.server_seconds is not None and c.server_seconds >= 0.03 for c in calls)
    metrics, windows, reasons = summarise(calls, CASE, 2, ("3",))
    assert reasons == [], "a new seed every call: the sampling nodes never come from the cache"
    assert len(windows) == 2
    assert metrics["calls"] == 4
    assert [json.loads(line)["phase"] for line in (tmp_path / "events.jsonl").read_text().splitlines()] == [
        "warmup"
    ] + ["measure"] * 4


def test_a_call_answered_from_comfyuis_cache_is_caught(tmp_path: Path) -> None:
    """The planted fault: the same graph twice (no new seed), as a client that forgot to vary it would send."""
    workflow = load_workflow(write_workflow(tmp_path, WORKFLOW), "plan.yaml")
    graph = prepared(workflow, CASE, seed=1, prompt="same")
    with in_thread(lambda: fake_comfyui(FakeComfyUI())) as url:
        client = ComfyUIClient(url)
        entries = [client.call(graph, 10.0, 0.01) for _ in range(2)]
    calls = [history_call("measure", 0, seconds, entry) for seconds, entry in entries]
    assert calls[0].cached_nodes == ()
    _, _, reasons = summarise(calls, CASE, 1, workflow.guarded)
    assert reasons == ["call 1: nodes 3 were answered from the server's cache"]


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("reject", "HTTP 400: Prompt outputs failed validation; node errors: "),
        ("error", "failed on the server: KSampler (node 3): Allocation on device"),
        ("hang", "did not complete within suites.diffusion.comfyui.timeout-s"),
    ],
)
def test_comfyui_failures_are_reported_with_the_servers_reason(tmp_path: Path, mode: str, message: str) -> None:
    with pytest.raises(ComfyUIError) as info:
        run_fake(tmp_path, mode, timeout_s=0.5)
    assert message in str(info.value)


def test_fewer_images_than_the_batch_make_the_case_invalid(tmp_path: Path) -> None:
    _, _, reasons = summarise(run_fake(tmp_path, "fewer_images"), CASE, 2)
    assert "call 1 made 1 images, not 2" in reasons


def test_the_comfyui_suite_measures_a_server_and_skips_without_one(tmp_path: Path) -> None:
    workflow = write_workflow(tmp_path, WORKFLOW)
    plan = plan_with(tmp_path, f'resolutions: ["64x48"]\ncalls: 2\ncomfyui: {{workflow: {workflow}}}')
    plan.write_text(plan.read_text() + "gates: {repeats: 2}\n")
    test = "suites/diffusion/test_text_to_image.py::test_comfyui"
    base = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", test, "-m", "cpu", "--plan", str(plan),
            "--reports-dir", str(tmp_path / "reports"), "-rs"]  # fmt: skip
    skipped = subprocess.run(base, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert "no ComfyUI server to measure: pass --comfyui-url URL" in skipped.stdout
    with in_thread(lambda: fake_comfyui(FakeComfyUI())) as url:
        done = subprocess.run([*base, "--comfyui-url", url], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:]
    (case,) = json.loads((tmp_path / "reports" / "latest" / "cases.json").read_text())["cases"]
    assert case["suite"] == "diffusion.comfyui"
    assert case["metrics"]["images"] == 4  # 2 repeats x 2 calls x batch 1
    assert len(case["repeats"]) == 2


def test_the_worker_leases_one_card_on_npu_and_none_on_cpu(tmp_path: Path) -> None:
    """On NPU and GPU the worker took no lease and saw every card: it could share one with a server."""
    leases = tmp_path / "leases"
    with worker_card("cpu", [0, 1], leases, "t") as env:
        assert env == {}
    server = DeviceLease(leases, "npu", [0], 1, timeout_s=1, holder="a server")  # card 0 is a server's
    with server, worker_card("npu", [0, 1], leases, "diffusion case x") as env:
        assert env == {"ASCEND_RT_VISIBLE_DEVICES": "1"}
        with pytest.raises(LeaseError), DeviceLease(leases, "npu", [1], 1, timeout_s=0.2):
            pass  # held by the worker for as long as the case runs
    with worker_card("gpu", [], leases, "t") as env:
        assert env == {"CUDA_VISIBLE_DEVICES": "0"}
