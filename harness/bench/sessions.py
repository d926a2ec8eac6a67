"""Multi-turn sessions: `users` chat conversations of `turns` turns, each turn's prompt the whole history so far
(the system prompt every user shares, every earlier message and answer), so that later turns can reuse the KV of
earlier ones.

Turns run in rounds: every user's turn k at once, then the think time, then turn k+1. A round is bracketed by two
scrapes of the server's /metrics, so each turn's prefix-cache hit rate is the server's own count, not a guess.
The check: the hit rate must rise with the turn. From turn 2 on, each turn must reach at least half of what it
could reuse (the previous turn's prompt, in whole KV blocks, over this turn's prompt), and the last turn must hit
more than the first. A server without prefix caching stays near the first turn's rate and fails.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.bench.cases import LoadSettings
from harness.client.http import HTTPClient
from harness.client.openai import RequestRecord, send_request
from harness.config.workloads import SessionsSpec
from harness.gates.verdict import Verdict
from harness.load.tokens import Tokens
from harness.metrics.serving import summarise
from harness.metrics.signals import server_signals
from harness.results.case import CaseResult
from harness.server.endpoint import Endpoint
from harness.server.prometheus import scrape, server_block_size

SUITE = "serving.sessions"
FALLBACK_BLOCK = 16  # vLLM's default KV block, for a server whose /metrics does not say


@dataclass
class Conversation:
    """One user's messages so far."""

    messages: list[dict[str, str]] = field(default_factory=list)
    prompt_tokens: list[int] = field(default_factory=list)  # the server's count of each turn's prompt


@dataclass(frozen=True)
class Turn:
    """One round: every user's turn `index` (from 1), and the server's prefix-cache hit rate over it."""

    index: int
    records: tuple[RequestRecord, ...]
    hit_rate: float | None
    reachable: float | None  # the share of this turn's prompt tokens the previous turn's prompt covers

    def row(self) -> dict[str, Any]:
        ttfts = [r.content_times[0] - r.sent for r in self.records if r.ok and r.content_times]
        prompts = [r.prompt_tokens for r in self.records if r.prompt_tokens is not None]
        return {
            "turn": self.index,
            "requests": len(self.records),
            "completed": sum(r.ok for r in self.records),
            "mean_prompt_tokens": float(np.mean(prompts)) if prompts else None,
            "mean_ttft_ms": float(np.mean(ttfts)) * 1000.0 if ttfts else None,
            "p90_ttft_ms": float(np.percentile(ttfts, 90)) * 1000.0 if ttfts else None,
            "hit_rate": self.hit_rate,
            "reachable": self.reachable,
        }


def reachable(previous: list[int], current: list[int], block: int) -> float | None:
    """What a turn could take from the cache: each user's previous prompt in whole blocks, over this prompt."""
    if not previous or len(previous) != len(current) or not sum(current):
        return None
    return sum(p // block * block for p in previous) / sum(current)


def rising_verdict(turns: list[Turn]) -> Verdict:
    """Does the server's hit rate rise with the turn? Each later turn must reach half of its reachable share, and
    the last turn must hit more than the first."""
    rates = [t.hit_rate for t in turns]
    numbers: dict[str, float | None] = {f"turn_{t.index}": t.hit_rate for t in turns}
    said = "hit rate by turn: " + ", ".join("-" if r is None else f"{r:.1%}" for r in rates)
    first, last = rates[0], rates[-1]

    def judged(outcome: Any, message: str) -> Verdict:
        change = None if first is None or last is None else last - first
        return Verdict("prefix_cache_hit_rate", outcome, message, change=change, absolute=True,
                       baseline_mean=first, candidate_mean=last, numbers=numbers)  # fmt: skip

    if any(r is None for r in rates):
        return judged("not_shown", f"{said}: the server exports no prefix-cache counters")
    short = [t for t in turns[1:] if t.reachable is not None and (t.hit_rate or 0.0) < t.reachable / 2]
    if short:
        misses = ", ".join(f"turn {t.index} {t.hit_rate:.1%} of a reachable {t.reachable:.1%}" for t in short)
        return judged("fail", f"{said}: later turns do not reuse the earlier ones' KV ({misses})")
    if last is None or first is None or last <= first:
        return judged("fail", f"{said}: the last turn hits no more than the first")
    return judged("pass", said)


async def _round(
    client: HTTPClient, endpoint: Endpoint, bodies: list[dict[str, Any]], settings: LoadSettings
) -> list[RequestRecord]:
    sends = [send_request(client, endpoint, "chat", body, settings.request_timeout_s) for body in bodies]
    return list(await asyncio.wait_for(asyncio.gather(*sends), settings.case_deadline_s))


def run_sessions(endpoint: Endpoint, tokens: Tokens, spec: SessionsSpec, settings: LoadSettings) -> CaseResult:
    """Run every conversation to its last turn, round by round, and judge the hit rate by turn."""
    cache_block = server_block_size(endpoint) or FALLBACK_BLOCK
    rng = np.random.default_rng([spec.seed, spec.users, spec.turns])
    system = tokens.text_of_length(spec.system_tokens, rng) if spec.system_tokens else None
    talks = [Conversation([{"role": "system", "content": system}] if system else []) for _ in range(spec.users)]
    turns: list[Turn] = []
    started = time.monotonic()

    async def conversations() -> None:
        async with HTTPClient(endpoint.base_url, settings.request_timeout_s) as client:
            for index in range(1, spec.turns + 1):
                for talk in talks:
                    talk.messages.append({"role": "user", "content": tokens.text_of_length(spec.user_tokens, rng)})
                bodies = [_body(talk, spec, settings) for talk in talks]
                before = await asyncio.to_thread(scrape, endpoint)
                records = await _round(client, endpoint, bodies, settings)
                after = await asyncio.to_thread(scrape, endpoint)
                signals = server_signals(before, after) if before and after else {}
                hit = signals.get("prefix_cache_hit_rate")
                if hit is None and signals.get("prefix_cache_queries") == 0:
                    hit = 0.0  # the server looked nothing up: prefix caching is off, and nothing was hit
                previous = [t.prompt_tokens[-1] for t in talks if t.prompt_tokens]
                for talk, record in zip(talks, records, strict=True):
                    talk.messages.append({"role": "assistant", "content": record.text})
                    talk.prompt_tokens.append(record.prompt_tokens or 0)
                current = [t.prompt_tokens[-1] for t in talks]
                turns.append(Turn(index, tuple(records), _rate(hit), reachable(previous, current, cache_block)))
                if any(not r.ok for r in records):
                    return  # a failed turn breaks its conversation: later turns would not be the same workload
                if index < spec.turns:
                    await asyncio.sleep(spec.think_time_s)

    asyncio.run(conversations())
    records = [r for t in turns for r in t.records]
    verdict = rising_verdict(turns) if len(turns) == spec.turns else None
    config = {
        "users": spec.users,
        "turns": spec.turns,
        "system_tokens": spec.system_tokens,
        "user_tokens": spec.user_tokens,
        "output_tokens": spec.output_tokens,
        "think_time_s": spec.think_time_s,
        "cache_block": cache_block,
        "num_requests": spec.users * spec.turns,
        "endpoint_type": "chat",
        "model": endpoint.model,
        "seconds": round(time.monotonic() - started, 3),
    }
    rows = [t.row() for t in turns]
    return CaseResult(
        suite=SUITE,
        case_id=f"u{spec.users}-t{spec.turns}",
        config=config,
        metrics={**summarise(records), "turns": rows},
        checks={"sessions": verdict.as_json()} if verdict else {},
        invalid_reasons=[] if verdict else [f"only {len(turns)} of {spec.turns} turns ran: a request failed"],
        series={"ttft_by_turn": [[row["turn"], row["mean_ttft_ms"]] for row in rows]},
    )


def _body(talk: Conversation, spec: SessionsSpec, settings: LoadSettings) -> dict[str, Any]:
    body: dict[str, Any] = {
        "messages": [dict(m) for m in talk.messages],
        "max_tokens": spec.output_tokens,
        "stream": True,
        "temperature": 0.0,
    }
    if settings.ignore_eos:
        body["ignore_eos"] = True
    return body


def _rate(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None
