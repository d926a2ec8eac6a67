"""pytest side of the diffusion suite: `--comfyui-url` (a running ComfyUI server to measure) and its workflow."""

from __future__ import annotations

import pytest

from harness.config.plan import Plan
from harness.diffusion.comfyui import ComfyUIClient, Workflow, load_workflow
from harness.errors import PlanError
from harness.secrets import redact_url


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("llmqual").addoption(
        "--comfyui-url", default=None, metavar="URL", help="measure the diffusion cases on this ComfyUI server too"
    )


@pytest.fixture
def comfyui(request: pytest.FixtureRequest, plan: Plan) -> tuple[ComfyUIClient, Workflow]:
    """A client of the --comfyui-url server and the plan's workflow (checked); skips with the reason without one."""
    url = request.config.getoption("--comfyui-url")
    if not url:
        pytest.skip("no ComfyUI server to measure: pass --comfyui-url URL")
    spec = plan.suites.diffusion
    if spec is None or spec.comfyui is None:
        pytest.skip(f"--comfyui-url {redact_url(url)} given, but the plan has no suites.diffusion.comfyui.workflow")
    try:
        workflow = load_workflow(plan.relative(spec.comfyui.workflow), plan.source)
    except PlanError as exc:
        raise pytest.UsageError(str(exc)) from exc
    return ComfyUIClient(url), workflow
