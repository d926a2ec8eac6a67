"""The capacity probe: the longest max-model-len that serves, per card count and memory setting (suites.capacity).

The table (`<run>/capacity/capacity.csv`, `.json`, every attempt in `attempts.jsonl`) is the product; the assertions
are about the search having done what it claims: every probe closed its bracket to the plan's granularity, the
length above the answer really failed to serve, and where the engine refused for lack of KV memory its own estimate
of the longest length that fits lies inside the bracket. Lengths are reported, not asserted: they depend on the
hardware and the engine's version.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.capacity.probe import probe_model, run_probe
from harness.capacity.table import ProbeRow
from harness.config.plan import Plan
from harness.plugins.recording import RecordCase
from harness.results.case import CaseResult
from harness.run import Run
from harness.served import serving_config
from harness.server.pool import ServerPool

pytestmark = pytest.mark.capacity


def _case(row: ProbeRow) -> CaseResult:
    return CaseResult(
        suite="capacity",
        case_id=f"tp{row.cards}-{row.memory.replace(' ', '')}",
        config={"model": row.model, "cards": row.cards, "memory": row.memory, "attempts": row.attempts},
        metrics={
            "max_model_len": row.max_model_len,
            "first_failed": row.first_failed,
            "engine_estimate": row.engine_estimate,
            "starts": row.starts,
            "probe_seconds": round(row.seconds, 1),
        },
        checks={"complete": row.complete, "refused_by_engine": row.refused_by_engine, "note": row.note},
    )


def test_capacity_probe(
    request: pytest.FixtureRequest,
    plan: Plan,
    model_cache: Path,
    llmqual_run: Run,
    server_pool: ServerPool,
    record_case: RecordCase,
) -> None:
    spec = plan.suites.capacity
    if spec is None:
        pytest.skip("the plan has no suites.capacity section")
    if request.config.getoption("--endpoint"):
        pytest.skip("the capacity probe starts servers of its own; it cannot run against --endpoint")
    server_pool.close()  # the probe's servers alone on the cores (or cards) while lengths are measured
    model = probe_model(plan, spec, model_cache)
    out = llmqual_run.directory / "capacity"
    outcome = run_probe(
        plan, spec, model, serving_config(plan, model, model_cache), out, print, leases=model_cache / "leases"
    )
    for row in outcome.rows:
        record_case(_case(row))
    for row in outcome.rows:
        where = f"{row.cards} card(s), {row.memory}"
        assert row.complete, f"{where}: the search did not finish: {row.note}"
        assert row.max_model_len is not None, f"{where}: {row.note}"
        if row.first_failed is None:
            continue  # served up to max-length: nothing refused it
        assert row.first_failed - row.max_model_len <= spec.granularity, f"{where}: the bracket is still open"
        if row.refused_by_engine:
            assert row.engine_estimate is not None, f"{where}: vLLM refused without an estimate: {row.failed_because}"
            assert row.max_model_len <= row.engine_estimate < row.first_failed, (
                f"{where}: vLLM estimates {row.engine_estimate} tokens fit, outside the measured bracket "
                f"[{row.max_model_len}, {row.first_failed})"
            )
