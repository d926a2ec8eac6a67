"""The report's replay, sessions and telemetry sections, from a miniature run: the checks and numbers shown, the
plots drawn, the measured windows shaded, and energy and tokens per joule computed by hand."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from harness.report.html import render
from harness.report.rundata import RunData
from harness.report.telemetry import ab_windows, energy_j, telemetry_section, windows
from harness.report.workloads import replay_section, sessions_section


def replay_doc() -> dict[str, Any]:
    timeline = [[0.0, 0.001, 0.02], [0.5, 0.502, None]]
    check = {"metric": "prefix_cache_hit_rate", "outcome": "pass", "message": "measured hit rate 41.0%",
             "baseline_mean": 0.45, "candidate_mean": 0.41, "timeline": timeline}  # fmt: skip
    return {"suite": "serving.replay", "case_id": "trace-x2", "config": {"num_requests": 2, "speedup": 2.0},
            "metrics": {"completed": 2, "total_output_tokens": 40}, "checks": {"replay": check,
            "client": {"window": [100.0, 101.0], "p99_schedule_lag_ms": 2.0}}}  # fmt: skip


def sessions_doc() -> dict[str, Any]:
    turns = [
        {"turn": 1, "completed": 8, "mean_ttft_ms": 30.0, "p90_ttft_ms": 40.0, "hit_rate": 0.0, "reachable": None},
        {"turn": 2, "completed": 8, "mean_ttft_ms": 20.0, "p90_ttft_ms": 25.0, "hit_rate": 0.4, "reachable": 0.41},
    ]
    check = {"metric": "prefix_cache_hit_rate", "outcome": "fail", "message": "turn 2 <b> short"}
    return {"suite": "serving.sessions", "case_id": "u8-t2", "config": {}, "metrics": {"turns": turns},
            "checks": {"sessions": check}}  # fmt: skip


def static_doc() -> dict[str, Any]:
    return {"suite": "serving.static", "case_id": "p1-in64-out32", "config": {}, "metrics": {},
            "repeats": [{"total_output_tokens": 100}, {"total_output_tokens": 300}],
            "checks": {"windows": [[10.0, 12.0], [20.0, 22.0]]}}  # fmt: skip


def ab_doc() -> dict[str, Any]:
    """An A/A comparison of two pairs: the reference measured at 40-41 s and 43-44 s, the candidate at 41.5-42.5 s
    and 44.5-45.5 s; the second pair was disturbed and set aside."""
    rows = [("reference", 0, [40.0, 41.0], False), ("candidate", 0, [41.5, 42.5], False),
            ("candidate", 1, [43.0, 44.0], True), ("reference", 1, [44.5, 45.5], True)]  # fmt: skip
    repeats = [{"side": side, "pair": pair, "set_aside": aside, "window": span, "total_output_tokens": 64}
               for side, pair, span, aside in rows]  # fmt: skip
    return {"suite": "serving.ab", "case_id": "a-a", "config": {}, "metrics": {}, "checks": {}, "repeats": repeats}


def run_with(tmp_path: Path, lines: list[dict[str, Any]]) -> RunData:
    (tmp_path / "telemetry").mkdir(parents=True)
    (tmp_path / "telemetry" / "vllm-tiny.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return RunData(tmp_path, {}, [], [replay_doc(), sessions_doc(), static_doc()])


def test_replay_and_sessions_show_their_checks_and_plots(tmp_path: Path) -> None:
    run = RunData(tmp_path, {}, [], [replay_doc(), sessions_doc()])
    replay = replay_section(run)
    assert "PASS: measured hit rate 41.0%" in replay
    assert re.search(r'data-plot="replay-timeline-trace-x2".*?class="mark"', replay, re.S)
    sessions = sessions_section(run)
    assert "FAIL: turn 2 &lt;b&gt; short" in sessions
    assert "none: no earlier turn" in sessions, "the first turn's reachable share is none, not a missing reading"
    for plot in ("sessions-ttft-by-turn", "sessions-hit-rate-by-turn"):
        assert re.search(rf'data-plot="{plot}".*?class="mark"', sessions, re.S), plot
    assert replay_section(RunData(tmp_path, {}, [], [])) == "", "no replay, no section"


def test_each_repeats_window_is_found_with_its_tokens() -> None:
    run = RunData(Path("."), {}, [], [static_doc(), replay_doc()])
    assert windows(run) == [
        ("p1-in64-out32 #1", 10.0, 12.0, 100),
        ("p1-in64-out32 #2", 20.0, 22.0, 300),
        ("trace-x2", 100.0, 101.0, 40),
    ]


def test_ab_windows_are_one_row_per_side_without_the_pairs_set_aside(tmp_path: Path) -> None:
    run = RunData(tmp_path, {}, [], [ab_doc()])
    assert ab_windows(run) == [("A/B a-a: reference", [(40.0, 41.0)], 64), ("A/B a-a: candidate", [(41.5, 42.5)], 64)]
    # the sampled server is the reference: busy in its windows, paused (idle) in the candidate's
    lines = [{"t": 40.0 + t / 4, "device": "cpu", "cores": 1.0 if t / 4 < 1.25 else 0.0} for t in range(24)]
    (tmp_path / "telemetry").mkdir()
    (tmp_path / "telemetry" / "vllm-tiny.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    section = telemetry_section(run)
    assert section.count('class="band"') == 2, "one plot (cores), the two kept windows shaded"
    cells = r'<td class="text">(A/B a-a: \w+)</td><td>([\d.]+)</td><td>(\d+)</td><td>([\d.]+)</td>'
    rows = re.findall(cells, section)
    assert rows == [("A/B a-a: reference", "1", "5", "1"), ("A/B a-a: candidate", "1", "5", "0")], section


def test_energy_sums_the_cards_power_over_the_window() -> None:
    lines = [{"t": t, "device": d, "power_w": w} for t in (10.0, 11.0, 12.0) for d, w in (("npu0", 100), ("npu1", 50))]
    assert energy_j(lines, 10.0, 12.0) == pytest.approx(300.0), "150 W for 2 s"
    assert energy_j(lines, 10.5, 11.5) is None, "one reading is not an integral"


def test_telemetry_shades_windows_and_gives_tokens_per_joule(tmp_path: Path) -> None:
    lines = [{"t": 9.0 + t, "device": "npu0", "aicore_pct": 50.0, "power_w": 100.0} for t in range(16)]
    lines.append({"t": 30.0, "error": "TimeoutExpired: npu-smi"})
    section = telemetry_section(run_with(tmp_path, lines))
    assert "16 readings of 1 device(s) (1 readings failed" in section
    assert section.count('class="band"') >= 2 * 2, "each plot shades the two static windows"
    # window 1: 100 tokens over 200 J (100 W x 2 s); window 2 has no readings inside (they end at 24 s)
    assert "<td>0.5</td>" in section
    assert 'data-plot="telemetry-power_w"' in section
    assert "energy (J)" in section
    assert "No power readings" not in section


def test_the_cpu_defaults_telemetry_has_no_power_and_says_so(tmp_path: Path) -> None:
    lines = [{"t": 10.0 + t / 2, "device": "cpu", "cores": 1.2, "rss_mb": 900.0} for t in range(6)]
    html = render(run_with(tmp_path, lines))
    assert 'data-plot="telemetry-cores"' in html
    assert 'data-plot="telemetry-power_w"' not in html
    assert "Device telemetry" in html
    assert "No power readings from these devices: no energy or tokens per joule." in html
    assert "energy (J)" not in html, "no column of 'missing' for what this platform cannot read"
