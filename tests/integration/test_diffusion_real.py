"""The diffusion suite's checks failing on the real pipeline (the tiny Flux through diffusers, in its worker
process): an image of another size than the case's, and a case that runs past its deadline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.config.diffusion import DiffusionSpec
from harness.diffusion.cases import DiffusionCase
from harness.diffusion.pipeline import DiffusionError, run_pipeline_case
from harness.diffusion.protocol import call_slots, summarise
from harness.paths import cache_root
from tests.integration.procs import REPO, TAG, new_tag, no_tagged_processes_within

pytestmark = pytest.mark.integration

CACHE = cache_root(REPO)


def test_an_image_of_another_size_makes_the_case_invalid(tmp_path: Path) -> None:
    """The planted fault: a height the pipeline cannot make (the plan check that refuses it bypassed). diffusers
    warns and makes a smaller image; the harness's size check catches it."""
    case, spec = DiffusionCase(66, 64, 2, 1), DiffusionSpec.model_validate({"warmup-calls": 0, "calls": 1})
    loaded, calls = run_pipeline_case(case, spec, call_slots(case, spec, 1), None, CACHE, "cpu", tmp_path)
    assert loaded["pipeline"] == "FluxPipeline"
    _, _, reasons = summarise(calls, case, 1)
    assert reasons == ["call 0 made images of 64x64 (width x height), not the case's size"]


def test_a_case_past_its_deadline_is_stopped_whole_and_keeps_what_it_measured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tag = new_tag()
    monkeypatch.setenv(TAG, tag)  # the worker inherits it
    case = DiffusionCase(64, 64, 4, 1)
    spec = DiffusionSpec.model_validate({"warmup-calls": 0, "calls": 10_000, "timeout-s": 20})
    with pytest.raises(DiffusionError) as info:
        run_pipeline_case(case, spec, call_slots(case, spec, 1), None, CACHE, "cpu", tmp_path)
    assert "diffusion case h64-w64-s4-b1 did not finish within 20 s (suites.diffusion.timeout-s)" in str(info.value)
    assert no_tagged_processes_within(tag) == []
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert events[0]["event"] == "loaded"
    assert len(events) > 2, "the calls made before the deadline are on disk"
