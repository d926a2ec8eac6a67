"""The capacity probe on real servers: for each card count and memory setting, the longest max-model-len that serves.

One probe is a search (harness.capacity.search) over max-model-len with a real server start per length tried, and a
small static benchmark at each length that started. Memory is the card memory on NPUs and GPUs
(`--gpu-memory-utilization`, the guides' 0.9) and, on the CPU, the KV cache space vLLM is given
(`VLLM_CPU_KVCACHE_SPACE`, whole GiB): the same admission check refuses a length whose KV does not fit either way.

Every attempt is appended to `attempts.jsonl` as it ends and the table is rewritten after each probe, so a probe
that dies (or passes its deadline) keeps what it measured.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from harness.bench.cases import LoadSettings, StaticCase
from harness.bench.execute import run_static
from harness.capacity.kv_report import kv_capacity, kv_refusal, start_oom
from harness.capacity.memory import CapacityInputError, Memory, check_fits_at_start, memories
from harness.capacity.search import Attempt, Bounds, Search, search
from harness.capacity.table import ProbeRow, write_table
from harness.config.capacity import CapacitySpec
from harness.config.plan import Plan
from harness.errors import HarnessError, ServerStartError
from harness.load.synthetic import random_samples
from harness.load.tokens import Tokens
from harness.model.resolve import base_model
from harness.model.tiny import ensure_tiny_model
from harness.runtime.leases import LeaseError
from harness.server.pool import ServerPool
from harness.server.vllm import ServerConfig, VLLMServer


def probe_config(base: ServerConfig, cards: int, memory: Memory, length: int, startup_s: float) -> ServerConfig:
    """The plan's server at one probe step: `cards`-way tensor parallel, `length` tokens, the probe's memory."""
    spec = base.spec
    extra = list(spec.extra_args)
    env = dict(base.env)
    if memory.kv_cache_gib is not None:
        env["VLLM_CPU_KVCACHE_SPACE"] = str(memory.kv_cache_gib)
    else:
        extra += ["--gpu-memory-utilization", f"{memory.utilization:g}"]
    batched = spec.max_num_batched_tokens
    changed = spec.model_copy(
        update={
            "max_model_len": length,
            "tensor_parallel_size": cards,
            "extra_args": tuple(extra),
            "startup_timeout_s": startup_s,
            "max_num_batched_tokens": None if batched is None else min(batched, length),
        }
    )
    return dataclasses.replace(base, spec=changed, env=tuple(sorted(env.items())))


def _bench(spec: CapacitySpec, length: int, seed: int) -> tuple[StaticCase, LoadSettings]:
    output = spec.bench.output_tokens
    prompt = length - output if spec.bench.prompt_tokens == "max" else spec.bench.prompt_tokens
    case = StaticCase(spec.bench.parallel_num, prompt, output, 1)
    settings = LoadSettings(
        request_timeout_s=spec.bench.request_timeout_s,
        case_deadline_s=spec.bench.request_timeout_s * 2,
        save_records=False,
        seed=seed,
    )
    return case, settings


class Starts(Protocol):
    """What a probe needs of a server pool (ServerPool): start a configuration, say where it logs, stop it."""

    def get(self, config: ServerConfig) -> VLLMServer: ...

    def log_path(self, config: ServerConfig) -> Path: ...

    def close(self) -> None: ...


class ProbeFailed(HarnessError):
    """A length could not be tried for a reason that says nothing about whether it fits (a failed start that is
    not vLLM's refusal or an out-of-memory, no cards, a failed benchmark): the probe stops rather than count it
    as the limit, naming the length and the log."""


def attempt_length(pool: Starts, config: ServerConfig, tokens: Tokens, spec: CapacitySpec, seed: int) -> Attempt:
    """Start the server at `config`'s length and benchmark it; whatever happens, the server is stopped after.

    Only vLLM's own KV admission refusal or an out-of-memory at start count as "does not fit"; every other failure
    raises ProbeFailed (a probe that counted it would understate the maximum and pass)."""
    length = config.spec.max_model_len
    assert length is not None
    started = time.monotonic()
    log = pool.log_path(config)
    try:
        server = pool.get(config)
    except ServerStartError as exc:
        text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
        refusal, oom = kv_refusal(text), start_oom(text)
        took = time.monotonic() - started
        if refusal is not None:
            return Attempt(length, False, refusal.line, took, None, refusal.estimated_max_len, True)
        if oom is not None:
            return Attempt(length, False, f"out of memory at start: {oom}", took)
        raise ProbeFailed(
            f"max-model-len {length}: the server failed to start for a reason that is neither vLLM's KV refusal nor "
            f"an out-of-memory ({str(exc).splitlines()[0]}); see {log}"
        ) from exc
    except LeaseError as exc:
        raise ProbeFailed(f"max-model-len {length}: no cards to lease ({exc})") from exc
    try:
        capacity = kv_capacity(log.read_text(encoding="utf-8", errors="replace"))
        case, settings = _bench(spec, length, seed)
        rng = np.random.default_rng([seed, length])
        samples = random_samples(tokens, case.parallel, case.prompt_tokens, case.output_tokens, rng)
        try:
            result = run_static(server.endpoint, tokens, case, settings, samples, suite="capacity")
        except HarnessError as exc:
            raise ProbeFailed(f"max-model-len {length}: the benchmark failed ({exc}); see {log}") from exc
        problems = list(result.checks["token_audit"]["problems"])
        if result.metrics["completed"] != case.parallel:
            problems.insert(0, f"failed requests: {result.metrics['failures']}")
        if problems:
            raise ProbeFailed(
                f"max-model-len {length}: the server started but the benchmark failed ({'; '.join(problems)}); "
                f"see {log}"
            )
        kv_tokens = capacity.tokens if capacity else None
        served = f"started; {case.parallel} x {case.prompt_tokens}+{case.output_tokens} tokens served"
        if capacity is not None:
            served += f"; KV cache {capacity.tokens:,} tokens ({capacity.concurrency:.2f}x this length)"
        return Attempt(length, True, served, time.monotonic() - started, kv_tokens)
    finally:
        pool.close()


@dataclass
class ProbeOutcome:
    """Every probe's search, in plan order (card counts, then memory settings)."""

    rows: list[ProbeRow]

    @property
    def min_cards(self) -> dict[str, int | None]:
        """Per memory setting, the fewest cards that served the first length (None: none did)."""
        found: dict[str, int | None] = {}
        for row in self.rows:
            if row.memory not in found or found[row.memory] is None:
                found[row.memory] = row.cards if row.max_model_len is not None else None
        return found


def run_probe(
    plan: Plan,
    spec: CapacitySpec,
    model_path: Path,
    base: ServerConfig,
    out: Path,
    progress: Callable[[str], None] = print,
    *,
    leases: Path,
) -> ProbeOutcome:
    """Every probe of the plan's capacity section, written to `out` (attempts.jsonl, capacity.csv/json) as it goes.
    Cards are leased in `leases`, the folder every run on the host shares (`<cache>/leases`): a probe started from the
    command line never takes a card a pytest run holds."""
    check_fits_at_start(plan, spec, model_path)
    tokens = Tokens.load(model_path)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[ProbeRow] = []
    ends = time.monotonic() + spec.deadline_s
    for cards in spec.tensor_parallel:
        for memory in memories(plan, spec):
            found = _probe(plan, spec, base, cards, memory, tokens, out, ends, progress, leases)
            rows.append(row_of(plan, model_path, cards, memory, found))
            write_table(rows, out)
    return ProbeOutcome(rows)


def _probe(
    plan: Plan,
    spec: CapacitySpec,
    base: ServerConfig,
    cards: int,
    memory: Memory,
    tokens: Tokens,
    out: Path,
    ends: float,
    progress: Callable[[str], None],
    leases: Path,
) -> Search:
    """One search: `cards` cards at one memory setting, until its bracket closes or the whole probe's deadline."""
    where = f"capacity: {cards} card(s), {memory.label}"
    bounds = Bounds(spec.start, spec.max_length, spec.granularity, spec.use_reported_capacity)
    with ServerPool(out / "logs", max_live=1, lease_dir=leases, log_prefix=f"tp{cards}-{memory.slug}-") as pool:

        def attempt(length: int) -> Attempt:
            # The server gets its whole start-up deadline: a start cut short by the probe's deadline would say
            # nothing about the length (ProbeFailed), so the probe's deadline is checked between starts only.
            progress(f"{where}: max-model-len {length} ...")
            config = probe_config(base, cards, memory, length, base.spec.startup_timeout_s)
            try:
                return attempt_length(pool, config, tokens, spec, plan.suites.load.seed)
            except ProbeFailed as exc:
                with (out / "attempts.jsonl").open("a", encoding="utf-8") as f:
                    f.write(json.dumps({"cards": cards, "memory": memory.label, "length": length, "error": str(exc)}))
                    f.write("\n")
                raise

        def tried(result: Attempt) -> None:
            progress(f"{where}: {result.length} {'serves' if result.fits else 'does not serve'} ({result.reason})")
            with (out / "attempts.jsonl").open("a", encoding="utf-8") as f:
                f.write(json.dumps({"cards": cards, "memory": memory.label, **result.as_json()}) + "\n")

        return search(bounds, attempt, max(0.0, ends - time.monotonic()), tried=tried)


def row_of(plan: Plan, model_path: Path, cards: int, memory: Memory, found: Search) -> ProbeRow:
    model = plan.server.served_model_name or model_path.name
    note = found.stopped or ""
    if found.fits is None and found.attempts:
        note = f"the model does not fit at the smallest length ({found.attempts[0].length}) on {cards} card(s)"
    refusal = next((a for a in found.attempts if a.length == found.refused), None)
    return ProbeRow(
        model=model,
        cards=cards,
        memory=memory.label,
        max_model_len=found.fits,
        first_failed=found.refused,
        failed_because=refusal.reason if refusal else "",
        refused_by_engine=bool(refusal and refusal.refused_by_engine),
        engine_estimate=refusal.estimated_max_len if refusal else None,
        starts=len(found.attempts),
        seconds=math.fsum(a.seconds for a in found.attempts),
        complete=found.complete,
        note=note,
        attempts=[a.as_json() for a in found.attempts],
    )


def probe_model(plan: Plan, spec: CapacitySpec, cache: Path) -> Path:
    """The model the probe starts: the capacity section's own (built here when tiny), else the plan's untrained."""
    if spec.model is None:
        return base_model(plan, cache)
    if spec.model.tiny is not None:
        return ensure_tiny_model(spec.model.tiny, cache)
    assert spec.model.path is not None
    path = plan.relative(spec.model.path)
    if not path.is_dir():
        raise CapacityInputError(
            f"{plan.source}: suites.capacity.model.path: {path} is not a folder; give a model directory"
        )
    return path


def capacity_spec(plan: Plan) -> CapacitySpec:
    if plan.suites.capacity is None:
        raise CapacityInputError(
            f"{plan.source}: the plan has no suites.capacity section; add one (docs/capacity.md), e.g. "
            "fixtures/plans/cpu-tiny-capacity.yaml"
        )
    return plan.suites.capacity
