"""Speculative decoding on a real vLLM (CPU build, n-gram drafts): the static suite's case carries the server's
own acceptance counters and the AscendCloud tools' per-request rates, output counts stay exact although a step
emits several tokens, and greedy answers are the same alone and under load (correctness under load)."""

from __future__ import annotations

import csv
import itertools
import json
import time
from pathlib import Path

import pytest

from harness.config.plan import load_plan
from harness.errors import ServerStartError
from harness.model.resolve import base_model
from harness.paths import cache_root
from harness.served import serving_config
from harness.server.vllm import ServerConfig, VLLMServer
from tests.integration.procs import REPO, TAG, new_tag, no_tagged_processes_within, run_plan

pytestmark = pytest.mark.integration

PLAN = REPO / "fixtures/plans/cpu-tiny-specdecode.yaml"
K = 3  # the plan's num_speculative_tokens


def test_ngram_speculative_decoding_measured_from_the_servers_counters(tmp_path: Path) -> None:
    run_plan(PLAN, tmp_path, "suites/serving/test_static.py::test_static", "suites/serving/test_consistency.py")
    run = tmp_path / "latest"
    cases = json.loads((run / "cases.json").read_text())["cases"]
    (consistency,) = [c for c in cases if c["suite"] == "serving.consistency"]
    assert consistency["checks"]["consistency"]["outcome"] == "pass", "greedy answers do not change under load"
    assert consistency["checks"]["server"]["spec_decode_drafts"] > 0, "... while the server drafts"
    assert consistency["checks"]["server"]["prefix_cache_hit_rate"] > 0, "... and reads its prefix cache"
    (case,) = [c for c in cases if c["suite"] == "serving.static"]
    server = case["checks"]["server"]
    assert server["spec_decode_drafts"] > 0, "the server drafted"
    rate = server["spec_decode_acceptance_rate"]
    assert 0 < rate <= 1
    assert 1 < server["spec_decode_mean_acceptance_length"] <= 1 + K
    by_position = server["spec_decode_acceptance_by_position"]
    assert len(by_position) == K
    # A draft token at position i is only accepted after the one before it: the shares cannot rise with position.
    assert all(a >= b for a, b in itertools.pairwise(by_position)), by_position
    m = case["metrics"]
    assert m["total_output_tokens"] == m["completed"] * 64, "exact output lengths with several tokens per event"
    assert 0 < m["mean_spec_acceptance_rate"] <= 1
    assert m["min_spec_acceptance_rate"] <= m["p90_spec_acceptance_rate"] <= m["max_spec_acceptance_rate"]
    with (run / "serving" / "static.csv").open(encoding="utf-8-sig", newline="") as f:
        (row,) = list(csv.DictReader(f))
    for column in ("投机接受率TP90", "投机接受率TP99", "投机最大接受率", "投机最小接受率", "投机平均接受率"):
        assert row[column] not in ("", None), f"{column} measured"


def test_a_speculative_config_vllm_rejects_fails_the_start_with_vllms_own_reason(tmp_path: Path) -> None:
    tag = new_tag()
    plan = load_plan(PLAN)
    rejected = {"method": "ngram", "num_speculative_tokens": 3, "prompt_lookup_min": 5, "prompt_lookup_max": 2}
    bad = plan.server_with({"speculative-config": rejected})
    cache = cache_root(REPO)
    base = serving_config(bad, base_model(bad, cache), cache)
    config = ServerConfig(base.platform, base.model_path, base.spec, (*base.env, (TAG, tag)))
    started = time.monotonic()
    with pytest.raises(ServerStartError) as info, VLLMServer(config, tmp_path / "vllm.log"):
        pass
    assert time.monotonic() - started < bad.server.startup_timeout_s, "noticed at its exit, not at the deadline"
    assert "prompt_lookup_min=5 must be <= prompt_lookup_max=2" in info.value.log_tail, "vLLM's own reason"
    assert no_tagged_processes_within(tag) == []
