"""Capacity questions on real vLLM servers (CPU build): the probe's limits against vLLM's own refusals, the SLO
rate search's knee straddled by its neighbours, and a profile of one static case, all in one pytest run of the
capacity plan (the job the plan's header names; outside the 10-minute main job)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from harness.capacity.memory import GiB, kv_bytes_per_token
from harness.capacity.probe import probe_model
from harness.config.plan import load_plan
from harness.paths import cache_root
from tests.integration.procs import REPO, harness_env, new_tag, no_tagged_processes_within, pytest_command

pytestmark = pytest.mark.integration

PLAN = REPO / "fixtures/plans/cpu-tiny-capacity.yaml"
JOB = (
    "suites/capacity",
    "suites/serving/test_capacity_rate.py",
    "suites/serving/test_static.py::test_static",
    "-m",
    "cpu",
    "--plan",
    str(PLAN),
)


def test_capacity_probe_rate_search_and_profile(tmp_path: Path) -> None:
    tag = new_tag()
    done = subprocess.run(
        pytest_command(*JOB, "--reports-dir", str(tmp_path)),
        cwd=REPO,
        env=harness_env(tag),
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert no_tagged_processes_within(tag) == [], "every server the probe and the search started is stopped"
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    run = tmp_path / "latest"
    assert json.loads((run / "run.json").read_text())["outcomes"] == {"passed": 3}

    # The probe: each KV size's limit is vLLM's own, and its cache size is the model's KV arithmetic.
    plan = load_plan(PLAN)
    assert plan.suites.capacity is not None
    model = probe_model(plan, plan.suites.capacity, cache_root(REPO))
    per_token = kv_bytes_per_token(model, plan.server.dtype, plan.server.kv_cache_dtype)
    assert per_token == 64 * 1024
    probes = json.loads((run / "capacity" / "capacity.json").read_text())["probes"]
    assert [p["memory"] for p in probes] == ["KV 1 GiB", "KV 2 GiB"]
    logs = "\n".join(log.read_text(errors="replace") for log in (run / "capacity" / "logs").glob("*.log"))
    for probe, gib in zip(probes, (1, 2), strict=True):
        started = [a for a in probe["attempts"] if a["fits"]]
        assert {a["kv_tokens"] for a in started} == {gib * GiB // per_token}, "the cache holds what the memory holds"
        assert probe["refused_by_engine"], probe["failed_because"]
        assert probe["failed_because"].startswith(
            f"To serve at least one request with the model's max seq len ({probe['first_failed']})"
        )
        assert probe["failed_because"] in logs, "the refusal is vLLM's own line, from its log"
        assert probe["first_failed"] - probe["max_model_len"] == plan.suites.capacity.granularity
        assert probe["max_model_len"] <= probe["engine_estimate"] < probe["first_failed"]
    assert probes[1]["max_model_len"] > probes[0]["max_model_len"]
    assert (run / "capacity" / "capacity.csv").read_text().count("\n") == 3

    # The rate search: the knee held every objective with confidence, the rate above it did not.
    cases = json.loads((run / "cases.json").read_text())["cases"]
    knee = next(c for c in cases if c["suite"] == "capacity.sla")
    steps = {s["rate"]: s for s in knee["checks"]["steps"]}
    rate, above = knee["metrics"]["sustainable_rate_per_s"], knee["metrics"]["first_unsustainable_rate_per_s"]
    assert all(v["outcome"] == "holds" for v in steps[rate]["verdicts"])
    assert not steps[above]["sustainable"]
    assert above / rate - 1 <= 0.15
    report = (run / "report.html").read_text()
    assert '<svg class="plot" data-plot="sla-p99_ttft_ms"' in report

    # The profile: traces of the tiny model's engine, its top operators, linked from the report.
    profile = next(c for c in cases if c["suite"] == "profile")
    assert profile["case_id"] == "p8-in64-out32"
    traces = list((run / "profiles" / "p8-in64-out32").glob("*.pt.trace.json.gz"))
    assert traces, "torch traces kept in the run"
    top = profile["checks"]["top_operators"]
    assert len(top) == 25
    assert top[0]["self_us"] > 0
    assert any(op["name"].startswith("_C::") or "attention" in op["name"] for op in top), "the engine's kernels"
    assert "<h2>Profiles</h2>" in report
    assert 'href="profiles/p8-in64-out32"' in report
