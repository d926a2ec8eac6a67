"""Benchmark cases: input checks before anything runs, and failed requests recorded as data (fake servers)."""

from __future__ import annotations

import argparse
import contextlib
import math
import types
from pathlib import Path

import pytest

from harness.bench.cases import BenchInputError, DynamicCase, LoadSettings, StaticCase, dynamic_cases, static_cases
from harness.bench.command import add_parser
from harness.bench.execute import run_dynamic, run_static
from harness.bench.from_plan import load_settings
from harness.bench.measure import repeated
from harness.bench.options import load_spec
from harness.config.plan import Plan
from harness.config.suites import LoadSpec
from harness.load.samples import Sample
from harness.load.tokens import Tokens
from harness.metrics.health import ClientLimits
from harness.plugins.progress import TerminalProgress
from harness.results.baseline import RunBaseline, update
from harness.results.case import CaseResult, read_case
from harness.results.sink import CaseSink, case_line
from tests.fakes import fake_server_thread


def test_static_cases_pair_lengths_and_cross_parallel() -> None:
    cases = static_cases([1, 4], [64, 256], [32, 64], 3)
    assert [c.id for c in cases] == ["p1-in64-out32", "p4-in64-out32", "p1-in256-out64", "p4-in256-out64"]
    assert cases[1].num_requests == 12


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: static_cases([1], [64, 128], [16], 1), "--prompt-tokens has 2 values and --output-tokens 1"),
        (lambda: dynamic_cases([1.0, 2.0], [10], 1.0), "--request-rate has 2 values and --num-prompts 1"),
        (lambda: static_cases([0], [64], [16], 1), "at least 1"),
        (lambda: dynamic_cases([0.0], [10]), "positive"),
    ],
)
def test_mismatched_or_bad_lists_fail_before_anything_runs(call: object, message: str) -> None:
    with pytest.raises(BenchInputError, match=message):
        call()  # type: ignore[operator]


def test_case_ids_name_the_rate() -> None:
    assert DynamicCase(math.inf, 64).id == "rateinf-n64"
    assert DynamicCase(2.5, 10, max_concurrency=4).id == "rate2.5-n10-c4"


def test_a_prompt_longer_than_the_context_fails_before_the_case(tokens: Tokens) -> None:
    with (
        fake_server_thread("fast") as endpoint,  # max_model_len 4096
        pytest.raises(BenchInputError, match="exceed the server's max-model-len 4096"),
    ):
        run_static(endpoint, tokens, StaticCase(1, 4000, 200, 1), LoadSettings())


def test_failed_requests_are_recorded_not_raised(tokens: Tokens, tmp_path: Path) -> None:
    with fake_server_thread("http500") as endpoint:
        result = run_static(endpoint, tokens, StaticCase(2, 8, 4, 3), LoadSettings(request_timeout_s=5))
    assert result.metrics["completed"] == 0
    assert result.metrics["failures"] == {"http_500": 6}
    assert result.metrics["mean_ttft_ms"] is None
    sink = CaseSink.for_run(tmp_path, {"host": "test"})
    document = sink.write(result, "static")
    assert document["metrics"]["failed"] == 6
    assert (tmp_path / "serving/static/p2-in8-out4.json").is_file()
    assert (tmp_path / "serving/static.csv").read_text(encoding="utf-8-sig").count("\n") == 2
    assert "0/6 completed" in case_line(document)


def test_a_dynamic_case_against_a_fast_stream(tokens: Tokens, tmp_path: Path) -> None:
    samples = [Sample("hello", 5, 5)] * 20  # the fake reports 5 prompt tokens
    with fake_server_thread("fast") as endpoint:
        result = run_dynamic(endpoint, tokens, DynamicCase(200.0, 20), LoadSettings(), samples, "unit")
    m = result.metrics
    assert m["completed"] == 20
    assert m["total_output_tokens"] == 100
    assert result.checks["token_audit"]["problems"] == []
    assert result.checks["server"] == {}, "the fake has no /metrics: no signals, not zeros"
    assert result.config["request_rate"] == 200.0
    assert result.records is not None
    assert len(result.records) == 20
    document = CaseSink.for_run(tmp_path, {}).write(result, "dynamic")
    assert document["config"]["dataset"] == "unit"


def test_a_stream_delivered_in_one_burst_has_no_tpot_not_zero(tokens: Tokens, tmp_path: Path) -> None:
    """The planted fault: every token of every request in one write (the fake's fast mode), as a starved API
    process sends them. TPOT and ITL are null, the case says why, a baseline takes none of it; the same case
    streamed 2 ms per token is measured (the control)."""
    with fake_server_thread("fast") as endpoint:
        bunched = run_static(endpoint, tokens, StaticCase(2, 8, 16, 2), LoadSettings())
    with fake_server_thread("paced") as endpoint:
        paced = run_static(endpoint, tokens, StaticCase(2, 8, 16, 2), LoadSettings())
    assert bunched.metrics["completed"] == 4
    assert bunched.checks["client"]["bunched_event_fraction"] == 1.0
    assert {k: v for k, v in bunched.metrics.items() if "tpot" in k or "itl" in k} == dict.fromkeys(
        [k for k in bunched.metrics if "tpot" in k or "itl" in k]
    ), "every TPOT and ITL statistic null"
    assert bunched.metrics["mean_ttft_ms"] is not None, "TTFT and E2EL are still measured"
    assert "100% of stream events arrived within 50 µs" in bunched.checks["per_token_unmeasurable"]
    document = CaseSink.for_run(tmp_path, {}).write(bunched, "static")
    assert "TPOT mean missing [TPOT/ITL NOT MEASURED: 100% of stream events" in case_line(document)
    baseline = update(RunBaseline("p", "cpu", None), "r1", [document], keep=10)
    assert "mean_tpot_ms" not in baseline.cases["serving.static/p2-in8-out16"], "no baseline from a burst"
    assert paced.checks["per_token_unmeasurable"] is None
    assert paced.metrics["mean_tpot_ms"] >= 2.0, "each token at least the fake's 2 ms after the previous"


def test_progress_is_reported_per_request_and_repeats_are_kept(tokens: Tokens) -> None:
    seen: list[tuple[str, int, int]] = []
    settings = LoadSettings(progress=lambda case, done, total: seen.append((case, done, total)))
    with fake_server_thread("fast") as endpoint:
        result = repeated(lambda _: run_static(endpoint, tokens, StaticCase(2, 8, 4, 3), settings), 2)
    assert [done for _, done, _ in seen] == [1, 2, 3, 4, 5, 6] * 2
    assert {(case, total) for case, _, total in seen} == {(result.case_id, 6)}
    assert len(result.repeats) == 2
    assert result.repeats[-1] == result.metrics, "the case's metrics are its last measurement's"


def test_terminal_progress_is_throttled() -> None:
    lines: list[str] = []

    class Reporter:
        def write_line(self, line: str) -> None:
            lines.append(line)

    class Capture:
        def global_and_fixture_disabled(self) -> contextlib.AbstractContextManager[None]:
            return contextlib.nullcontext()

    plugins = {"terminalreporter": Reporter(), "capturemanager": Capture()}
    config = types.SimpleNamespace(pluginmanager=types.SimpleNamespace(get_plugin=plugins.get))
    now = [0.0]
    progress = TerminalProgress(config, every_s=10.0, clock=lambda: now[0], tty=True)  # type: ignore[arg-type]
    for second in range(1, 36):
        now[0] = float(second)
        progress("p4-in64-out32", second, 100)
    for second in range(36, 60):  # the case's second repeat starts from request 1 again
        now[0] = float(second)
        progress("p4-in64-out32", second - 35, 100)
    expected = [(10, 9), (20, 19), (30, 29), (5, 4), (15, 14)]  # (requests done, seconds since this repeat began)
    assert lines == [f"  ... p4-in64-out32: {n}/100 requests in {s} s" for n, s in expected]

    lines.clear()  # in a log (not a TTY): one line when a long measurement ends; nothing for a short one
    logged = TerminalProgress(config, every_s=10.0, clock=lambda: now[0], tty=False)  # type: ignore[arg-type]
    for step in (1.0, 0.1):
        for done in range(1, 41):
            now[0] += step
            logged("p4-in64-out32", done, 40)
    assert lines == ["  ... p4-in64-out32: 40/40 requests in 39 s"]


def test_a_case_stopped_after_two_of_three_repeats_keeps_them_on_disk(tokens: Tokens, tmp_path: Path) -> None:
    """A fault in the third repeat (here an interrupt) must not lose the two already measured: each repeat but
    the last is written at once as a partial document, which the whole case would replace."""
    sink = CaseSink.for_run(tmp_path, {})
    written: list[Path] = []

    def progress(partial: CaseResult) -> None:
        written.append(sink.write_partial(partial)[1])

    with fake_server_thread("fast") as endpoint:

        def measure(repeat: int) -> CaseResult:
            if repeat == 2:
                raise KeyboardInterrupt("planted: the run is stopped in the third repeat")
            return run_static(endpoint, tokens, StaticCase(2, 8, 4, 3), LoadSettings())

        with pytest.raises(KeyboardInterrupt):
            repeated(measure, 3, progress)
    assert len(written) == 2
    assert written[0] == written[1]
    document = read_case(written[-1])
    assert document["partial"] == "2 of 3 repeats measured"
    assert len(document["repeats"]) == 2
    assert all(r["completed"] == 6 for r in document["repeats"])
    assert "[PARTIAL: 2 of 3 repeats measured]" in case_line(document)


def test_the_whole_case_carries_no_partial_mark(tokens: Tokens) -> None:
    partials: list[CaseResult] = []
    with fake_server_thread("fast") as endpoint:
        result = repeated(
            lambda _: run_static(endpoint, tokens, StaticCase(2, 8, 4, 3), LoadSettings()), 3, partials.append
        )
    assert [p.partial for p in partials] == ["1 of 3 repeats measured", "2 of 3 repeats measured"]
    assert result.partial is None
    assert "partial" not in result.document()
    assert len(result.repeats) == 3


def test_a_plan_and_llmqual_bench_build_the_same_settings_from_the_same_values() -> None:
    """One constructor, one set of defaults: `llmqual bench` without options gets the plan's defaults."""
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    static = parser.parse_args(["bench", "static", "--tokenizer", "t", "--save-result"])
    dynamic = parser.parse_args(["bench", "dynamic", "--tokenizer", "t", "--request-rate", "1", "--num-prompts", "1"])
    assert load_spec(static, "completions") == LoadSpec()
    assert load_spec(dynamic, "completions") == LoadSpec(save_records=False)  # --save-result not given
    plan = Plan.model_validate({"name": "p", "platform": "cpu", "model": {"path": "/m"}})
    from_cli = LoadSettings.from_spec(load_spec(static, "completions"))
    assert load_settings(plan) == from_cli
    assert from_cli.limits == ClientLimits()  # the library's default limits are the plan's
    assert from_cli.case_deadline_s == LoadSettings().case_deadline_s == LoadSpec().case_deadline_s
