"""The report's production-workload sections: trace replay (when each request was due and when it went, the hit
rate the trace implies against the server's) and multi-turn sessions (TTFT and the server's hit rate by turn)."""

from __future__ import annotations

from html import escape
from typing import Any

from harness.metric_names import MEAN_TTFT_MS, P99_TTFT_MS
from harness.report.cells import table
from harness.report.rundata import RunData
from harness.report.svg import Series, line_chart

FIRST_TURN = "none: no earlier turn"  # what the first turn could take from the cache


def _verdict(check: dict[str, Any] | None) -> str:
    if not check:
        return "not judged"
    return f"{str(check.get('outcome', '')).upper()}: {check.get('message', '')}"


def replay_section(run: RunData) -> str:
    """Empty when the run replayed no trace."""
    docs = run.of("serving.replay")
    if not docs:
        return ""
    rows, charts = [], []
    for d in docs:
        c, m, check = d["config"], d["metrics"], d.get("checks", {}).get("replay") or {}
        client = d.get("checks", {}).get("client") or {}
        rows.append(
            [
                d["case_id"],
                c.get("num_requests"),
                m.get("completed"),
                c.get("speedup"),
                c.get("schedule_rate"),
                client.get("achieved_send_rate"),
                client.get("p99_schedule_lag_ms"),
                c.get("cache_block"),
                check.get("baseline_mean"),
                check.get("candidate_mean"),
                m.get(MEAN_TTFT_MS),
                m.get(P99_TTFT_MS),
                _verdict(check),
            ]
        )
        timeline = [row for row in check.get("timeline", []) if row[0] is not None]
        late = [(t[0], (t[1] - t[0]) * 1000.0 if t[1] is not None else None) for t in timeline]
        ttft = [(t[0], t[2] * 1000.0 if t[2] is not None else None) for t in timeline]
        charts.append(
            line_chart(
                f"replay-timeline-{d['case_id']}",
                f"Replay {d['case_id']}: each request's send delay and TTFT, by when the trace had it arrive",
                [Series("sent - scheduled (ms)", late, joined=False), Series("TTFT (ms)", ttft, joined=False)],
                "scheduled time (s after the first request)",
                "ms",
            )
        )
    headers = [
        "case", "requests", "completed", "speed-up", "scheduled req/s", "sent req/s", "p99 schedule lag ms",
        "KV block", "hit rate implied", "hit rate measured", "mean TTFT ms", "p99 TTFT ms", "check",
    ]  # fmt: skip
    intro = (
        "<p>A trace's requests sent at the trace's own times (divided by the speed-up), their prompts token ids made "
        "so that equal hash ids are identical blocks. The implied hit rate is what an unbounded prefix cache would "
        "serve on the trace, in whole blocks of the server's KV block; the measured one is the server's own "
        "counters over the replay. The two must agree within the plan's tolerance.</p>"
    )
    return "<h2>Trace replay</h2>" + intro + table(headers, rows) + "".join(charts)


def sessions_section(run: RunData) -> str:
    """Empty when the run held no multi-turn sessions."""
    docs = run.of("serving.sessions")
    if not docs:
        return ""
    rows, ttft, hits = [], [], []
    for d in docs:
        turns = d["metrics"].get("turns") or []
        for t in turns:
            rows.append(
                [
                    d["case_id"],
                    t.get("turn"),
                    t.get("completed"),
                    t.get("mean_prompt_tokens"),
                    t.get("mean_ttft_ms"),
                    t.get("p90_ttft_ms"),
                    "none: no earlier turn"
                    if t.get("turn") == 1 and t.get("reachable") is None
                    else t.get("reachable"),
                    t.get("hit_rate"),
                ]
            )
        ttft.append(Series(f"{d['case_id']} mean", [(float(t["turn"]), t.get("mean_ttft_ms")) for t in turns]))
        ttft.append(Series(f"{d['case_id']} p90", [(float(t["turn"]), t.get("p90_ttft_ms")) for t in turns]))
        hits.append(Series(f"{d['case_id']} measured", [(float(t["turn"]), t.get("hit_rate")) for t in turns]))
        hits.append(
            Series(f"{d['case_id']} reachable", [(float(t["turn"]), t.get("reachable")) for t in turns], dashed=True)
        )
    checks = "".join(
        f"<p>{escape(str(d['case_id']))}: {escape(_verdict(d.get('checks', {}).get('sessions')))}</p>" for d in docs
    )  # fmt: skip
    intro = (
        "<p>Chat conversations whose every turn sends the whole history. Turns run in rounds (every user's turn, "
        "then the think time), so each turn's hit rate is the server's own prefix-cache count over that round. "
        "Reachable is what the turn could take from the cache: each user's previous prompt in whole KV blocks, over "
        "this turn's prompt. From turn 2 each turn must reach half of it, and the last must hit more than the "
        "first.</p>"
    )
    headers = ["case", "turn", "completed", "mean prompt tokens", "mean TTFT ms", "p90 TTFT ms", "reachable",
               "hit rate"]  # fmt: skip
    return (
        "<h2>Multi-turn sessions</h2>"
        + intro
        + checks
        + table(headers, rows)
        + line_chart("sessions-ttft-by-turn", "Sessions: TTFT by turn", ttft, "turn", "ms")
        + line_chart("sessions-hit-rate-by-turn", "Sessions: prefix-cache hit rate by turn", hits, "turn", "hit rate")
    )
