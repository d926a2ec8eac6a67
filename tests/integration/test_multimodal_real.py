"""Multimodal serving on a real vLLM (CPU build): a tiny vision-language model built here serves chat requests that
each carry a locally made image, and every served prompt count equals what the model's own processor counts for
that prompt and image (text, template and image tokens)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.config.plan import load_plan
from tests.integration.procs import REPO, run_plan

pytestmark = pytest.mark.integration

PLAN = REPO / "fixtures/plans/cpu-tiny-multimodal.yaml"


def test_chat_requests_with_images_are_measured_and_their_image_tokens_audited(tmp_path: Path) -> None:
    done = run_plan(PLAN, tmp_path, "suites/serving/test_static.py::test_multimodal")
    assert "1 passed" in done.stdout, "measured, not skipped"
    (case,) = json.loads((tmp_path / "latest" / "cases.json").read_text())["cases"]
    assert case["suite"] == "serving.multimodal"
    assert case["valid"], case["invalid_reasons"]
    config, audit, m = case["config"], case["checks"]["token_audit"], case["metrics"]
    tiles = 2 * 2 + 1  # a 96x128 image fitted to 128: four tiles and the whole image
    tokens_per_tile = load_plan(PLAN).model.tiny.vision.tokens_per_tile  # type: ignore[union-attr]
    assert config["image_tokens_per_request"] >= tiles * tokens_per_tile
    per_request = config["image_tokens_per_request"] + config["mean_text_tokens_per_request"]
    assert audit["input_length_mismatches"] == 0
    assert audit["server_input_tokens"] == audit["expected_input_tokens"] == audit["requests_audited"] * per_request
    assert audit["requested_input_tokens"] == audit["requests_audited"] * 32, "the text the harness wrote"
    assert m["total_output_tokens"] == m["completed"] * 16
    assert m["output_throughput"] > 0
    assert m["mean_ttft_ms"] > 0
