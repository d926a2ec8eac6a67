"""One real server spanning two node ranks (fixtures/plans/cpu-tiny-multinode.yaml: tensor parallel 2, node rank 1
`--headless`, both on this machine, joined over gloo at 127.0.0.1). Node rank 1's process group is killed in the
middle of a case, as a node dies: the case ends as a stopped server's does, the server check names the rank, and
nothing of ours is left running."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from harness.bench.cases import LoadSettings, StaticCase
from harness.bench.measure import measure_static
from harness.client.openai import request_once
from harness.config.plan import load_plan
from harness.errors import ServerStopped
from harness.load.tokens import Tokens
from harness.paths import cache_root
from harness.served import resolve_model, serving_config
from harness.server.vllm import ServerConfig, VLLMServer
from tests.integration.procs import REPO, TAG, new_tag, no_tagged_processes_within

pytestmark = pytest.mark.integration

PLAN = REPO / "fixtures/plans/cpu-tiny-multinode.yaml"


def test_a_node_rank_killed_mid_case_ends_the_case_names_the_rank_and_leaves_nothing(tmp_path: Path) -> None:
    tag = new_tag()
    plan = load_plan(PLAN)
    cache = cache_root(REPO)
    base = serving_config(plan, resolve_model(plan, cache), cache)
    config = ServerConfig(base.platform, base.model_path, base.spec, (*base.env, (TAG, tag)))
    log = tmp_path / "vllm.log"
    with VLLMServer(config, log) as server:
        assert server.secondaries is not None
        node1 = server.secondaries.ranks[1].pid
        assert node1 is not None
        assert request_once(server.endpoint, "completions", {"prompt": "1+1=", "max_tokens": 4}).ok
        rank_log = tmp_path / "vllm.node1.log"
        assert "world_size=2 rank=1" in rank_log.read_text()  # the rank joined the head's group
        assert "Worker_TP1" in rank_log.read_text()

        killed = False

        def kill_node1(case_id: str, done: int, total: int) -> None:
            nonlocal killed
            if done >= 4 and not killed:
                killed = True
                os.killpg(node1, signal.SIGKILL)  # the node dies: its whole group

        settings = LoadSettings(request_timeout_s=10.0, progress=kill_node1)
        started = time.monotonic()
        with pytest.raises(ServerStopped, match="the server stopped answering"):
            measure_static(server.endpoint, Tokens.load(config.model_path), StaticCase(4, 64, 64, 8), settings, 2)
        assert killed
        assert time.monotonic() - started < 90, "a dead rank ends the case after one timeout at most"
        assert server.problem() == f"node rank 1 exited with code -9 (log: {rank_log})"
    assert no_tagged_processes_within(tag) == []
