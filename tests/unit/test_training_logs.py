"""Training-log parsers on project-made fixtures with every variant the parsers know."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from harness.cli import main
from harness.training.parsers import LogFormatError, detect, parse_log

DATA = Path(__file__).parent / "data" / "training"

LLAMAFACTORY = "\n".join(
    json.dumps(row)
    for row in [
        {"current_steps": 5, "total_steps": 20, "loss": 2.8, "lr": 5e-05, "epoch": 0.25, "percentage": 25.0,
         "elapsed_time": "0:00:10", "remaining_time": "0:00:30", "throughput": 812.5, "total_tokens": 40960},
        {"current_steps": 10, "total_steps": 20, "loss": 2.1, "lr": 4e-05, "epoch": 0.5, "percentage": 50.0,
         "elapsed_time": "0:00:20", "remaining_time": "0:00:20", "total_tokens": 81920},
        {"current_steps": 10, "total_steps": 20, "eval_loss": 2.25, "epoch": 0.5, "percentage": 50.0,
         "elapsed_time": "0:00:22", "remaining_time": "0:00:20"},
        {"current_steps": 20, "total_steps": 20, "epoch": 1.0, "percentage": 100.0, "elapsed_time": "0:00:41",
         "remaining_time": "0:00:00"},
    ]
) + '\n{"current_steps": 21, "loss": 1.9'  # fmt: skip

TRAINER_STATE = {
    "global_step": 30,
    "log_history": [
        {"epoch": 0.1, "grad_norm": 3.5, "learning_rate": 1e-4, "loss": 3.0, "step": 10},
        {"epoch": 0.2, "grad_norm": 2.5, "learning_rate": 9e-5, "loss": 2.5, "step": 20},
        {"epoch": 0.2, "eval_loss": 2.6, "eval_runtime": 1.0, "step": 20},
        {"epoch": 0.3, "step": 30, "train_loss": 2.7, "train_runtime": 12.3, "total_flos": 1.0},
    ],
}


def test_megatron_variants() -> None:
    curve = parse_log((DATA / "megatron_variants.log").read_text())
    assert curve.format == "megatron"
    assert [p.step for p in curve.points] == [1, 2, 3, 4, 5], "the cut last line (step 6) is not a point"
    first, rank_prefixed, wrapped, variant, fsdp = curve.points
    assert first.loss == pytest.approx(10.45203)
    assert (first.learning_rate, first.grad_norm, first.elapsed_ms) == (1e-06, 31.337, 9999.1)
    assert rank_prefixed.loss == pytest.approx(9.871234)
    assert wrapped.loss == pytest.approx(9.123), "a field wrapped onto the next line, behind ANSI colours"
    assert variant.loss == pytest.approx(8.532), "%.3E losses of older logs"
    assert variant.global_batch_size == 64, "the misspelt 'gloabl batch size'"
    assert variant.tokens == 1048576
    assert variant.skipped == 1
    assert variant.extra["tgs"] == 3271.5
    assert variant.extra["throughput per gpu (tflop/s/gpu)"] == 187.3
    assert variant.extra["actual seqlen"] == 4096
    assert fsdp.loss is not None
    assert math.isnan(fsdp.loss), "MindSpeed FSDP2 `INFO [...] >>` lines; NaN kept"
    assert fsdp.nan == 1
    (validation,) = curve.eval_points
    assert validation.step == 4
    assert validation.loss == pytest.approx(8.611223)
    assert validation.extra["lm loss ppl"] == pytest.approx(5497.721)


def test_llamafactory_log_with_eval_summary_and_partial_line() -> None:
    curve = parse_log(LLAMAFACTORY)
    assert curve.format == "llamafactory"
    assert [(p.step, p.loss) for p in curve.points] == [(5, 2.8), (10, 2.1)]
    assert curve.points[0].tokens == 40960
    assert curve.points[1].extra["elapsed_s"] == 20.0
    assert curve.points[0].elapsed_ms is None, "the first interval includes start-up"
    assert curve.points[1].elapsed_ms == pytest.approx((20.0 - 10.0) * 1000 / 5)
    assert [(e.step, e.loss) for e in curve.eval_points] == [(10, 2.25)]


def test_trainer_state_and_console_lines() -> None:
    state = parse_log(json.dumps(TRAINER_STATE))
    assert state.format == "hf"
    assert [(p.step, p.loss, p.grad_norm) for p in state.points] == [(10, 3.0, 3.5), (20, 2.5, 2.5)]
    assert [(e.step, e.loss) for e in state.eval_points] == [(20, 2.6)]
    console = parse_log((DATA / "hf_console.log").read_text())
    assert [p.loss for p in console.points] == [2.3101, 2.0514]
    assert [e.loss for e in console.eval_points] == [2.1]


def test_trainer_state_with_token_counter_gives_time_per_iteration() -> None:
    """`include_num_input_tokens_seen` adds the counter and the cumulative run time to each entry."""
    history = [
        {"loss": 3.0, "step": 5, "num_input_tokens_seen": 500, "train_runtime": 2.0},
        {"loss": 2.0, "step": 10, "num_input_tokens_seen": 1000, "train_runtime": 3.5},
    ]
    curve = parse_log(json.dumps({"log_history": history}))
    assert [p.tokens for p in curve.points] == [500, 1000]
    assert [p.elapsed_ms for p in curve.points] == [None, pytest.approx(300.0)]


def test_own_curve_documents_round_trip() -> None:
    """A reference curve is stored as `parse-log --json` prints it and read back unchanged."""
    original = parse_log(LLAMAFACTORY)
    again = parse_log(json.dumps(original.as_json()))
    assert detect(json.dumps(original.as_json())) == "llmqual"
    assert again.points == original.points
    assert again.eval_points == original.eval_points
    with pytest.raises(LogFormatError, match="not an llmqual curve"):
        parse_log('{"format": "x", "points": [{"stp": 1}]}')


def test_detection_and_overrides() -> None:
    assert detect((DATA / "hf_console.log").read_text()) == "hf"
    with pytest.raises(LogFormatError, match="cannot tell the log format"):
        parse_log("just some text\n")
    with pytest.raises(LogFormatError, match="did you mean 'megatron'"):
        parse_log("x", "megatorn")
    with pytest.raises(LogFormatError, match="no Megatron iteration line"):
        parse_log(LLAMAFACTORY, "megatron")


def test_cli_prints_training_points_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "parse-log", str(DATA / "megatron_variants.log"), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["format"] == "megatron"
    assert document["points"][0]["step"] == 1
    assert document["points"][0]["loss"] == pytest.approx(10.45203)
    assert [e["step"] for e in document["eval_points"]] == [4]
    log = tmp_path / "trainer_log.jsonl"
    log.write_text(LLAMAFACTORY)
    assert main(["train", "parse-log", str(log), "--format", "llamafactory", "--json"]) == 0
    assert [p["loss"] for p in json.loads(capsys.readouterr().out)["points"]] == [2.8, 2.1]
