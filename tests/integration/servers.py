"""One real tiny-model server for a test module, tagged so the test can check nothing is left behind."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness.config.plan import load_plan
from harness.model.resolve import base_model
from harness.paths import cache_root
from harness.served import resolve_model, serving_config
from harness.server.endpoint import Endpoint
from harness.server.vllm import ServerConfig, VLLMServer
from tests.integration.procs import REPO, TAG, new_tag, no_tagged_processes_within

PLAN = REPO / "fixtures/plans/cpu-tiny.yaml"


@dataclass(frozen=True)
class Served:
    endpoint: Endpoint
    model_path: Path
    tag: str


@contextmanager
def tiny_server(log_dir: Path, untrained: bool = False) -> Iterator[Served]:
    """The CPU plan's server (its trained tiny model, or with `untrained` the model as built); on exit it and every
    process it started are gone (asserted)."""
    tag = new_tag()
    plan = load_plan(PLAN)
    cache = cache_root(REPO)
    model = base_model(plan, cache) if untrained else resolve_model(plan, cache)
    base = serving_config(plan, model, cache)
    config = ServerConfig(base.platform, base.model_path, base.spec, (*base.env, (TAG, tag)))
    with VLLMServer(config, log_dir / "vllm.log") as server:
        yield Served(server.endpoint, base.model_path, tag)
    left = no_tagged_processes_within(tag)
    assert left == [], f"processes left behind: {left}"
