"""Real tiny-model servers for the integration tests, tagged so a test can check nothing is left behind: one for
a test (`tiny_server`), or one shared by every module that only needs a server (`Shared`)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
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
    pgid: int


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
        assert server.pid is not None
        yield Served(server.endpoint, base.model_path, tag, server.pid)
    left = no_tagged_processes_within(tag)
    assert left == [], f"processes left behind: {left}"


class Shared:
    """One tiny-model server for every module that only needs one: started at first use, held stopped (SIGSTOP:
    no CPU, so it cannot disturb the timing of the modules between) whenever no module uses it, and stopped with
    the process check of `tiny_server` when the package's tests end."""

    def __init__(self, log_dir: Path) -> None:
        self._stack = ExitStack()
        self._log_dir = log_dir
        self._served: Served | None = None
        self._pgid: int | None = None

    @contextmanager
    def running(self) -> Iterator[Served]:
        if self._served is None:
            self._served = self._stack.enter_context(tiny_server(self._log_dir))
            self._pgid = self._served.pgid
        else:
            assert self._pgid is not None
            os.killpg(self._pgid, signal.SIGCONT)
        try:
            yield self._served
        finally:
            assert self._pgid is not None
            os.killpg(self._pgid, signal.SIGSTOP)

    def close(self) -> None:
        if self._pgid is not None:
            with suppress(ProcessLookupError):
                os.killpg(self._pgid, signal.SIGCONT)
        self._stack.close()
