"""`llmqual bench replay`: a production trace replayed at its own times (the plan's suites.replay, or a trace file).

    llmqual bench replay --plan fixtures/plans/cpu-tiny.yaml [--trace F [--format burstgpt]] [--speedup 4] \\
        [--max-requests N] [--base-url URL --tokenizer PATH] [--out DIR]

Against the server at --base-url, else the plan's own, started for the replay and stopped after. The trace is the
plan's suites.replay unless --trace names a file (then the other options override the plan's values). Writes
DIR/replay.json (the case, with the per-request timeline) and, for a generated trace, DIR/trace.jsonl. Exit 0 when
every request completed, the client kept its schedule and the hit rate agreed with the trace; 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from harness.bench.cases import BenchInputError
from harness.bench.from_plan import load_settings
from harness.bench.plan_server import plan_endpoint, tokenizer_folder
from harness.bench.replay import load_trace, run_replay
from harness.config.plan import load_plan
from harness.config.workloads import ReplaySpec
from harness.errors import PlanError
from harness.load.tokens import Tokens
from harness.paths import cache_root, reports_root
from harness.results.case import write_json
from harness.results.sink import case_line
from harness.runtime.interrupt import sigterm_interrupts
from harness.served import resolve_model

OVERRIDES = ("trace", "format", "block_size", "speedup", "cache_block", "hit_rate_tolerance", "max_requests")


def add_parser(kinds: Any) -> None:
    replay = kinds.add_parser("replay", help="a trace replayed at its own times (suites.replay or --trace)")
    replay.add_argument("--plan", required=True)
    replay.add_argument("--trace", default=None, help="Mooncake JSONL or BurstGPT CSV (default: the plan's)")
    replay.add_argument("--format", choices=("mooncake", "burstgpt"), default=None)
    replay.add_argument("--block-size", type=int, default=None, help="tokens per hash id (Mooncake: 512)")
    replay.add_argument("--speedup", type=float, default=None, help="the trace's times are divided by this")
    replay.add_argument("--cache-block", type=int, default=None, help="the server's KV block (default: it says)")
    replay.add_argument("--hit-rate-tolerance", type=float, default=None)
    replay.add_argument("--max-requests", type=int, default=None, help="only the trace's first N requests")
    replay.add_argument("--base-url", default=None, help="a running server (default: start the plan's)")
    replay.add_argument("--api-key", default=None)
    replay.add_argument("--served-model-name", default=None)
    replay.add_argument("--tokenizer", default=None, help="with --base-url: the served model's tokenizer")
    replay.add_argument("--out", type=Path, default=None, help="output folder (default reports/replay-<time>)")
    replay.set_defaults(run=_cmd_replay)


def replay_spec(args: argparse.Namespace, planned: ReplaySpec | None, source: str) -> ReplaySpec:
    """The plan's suites.replay with the options given on top (a --trace replaces a generated trace)."""
    given = {key: getattr(args, key) for key in OVERRIDES if getattr(args, key) is not None}
    if planned is None and "trace" not in given:
        raise PlanError(source, "suites.replay", "missing", "add a trace to the plan or give --trace FILE")
    base = planned.model_dump() if planned is not None else {}
    if "trace" in given:
        base.pop("generate", None)
        given["trace"] = str(Path(given["trace"]).resolve())
    try:
        return ReplaySpec.model_validate({**base, **given})
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else ""
        raise BenchInputError(f"--{field.replace('_', '-')}: {error['msg'].lower()}") from exc


def _cmd_replay(args: argparse.Namespace) -> int:
    plan = load_plan(args.plan)
    spec = replay_spec(args, plan.suites.replay, plan.source)
    cache = cache_root()
    out: Path = args.out or reports_root() / time.strftime("replay-%Y%m%d-%H%M%S")
    trace, path = load_trace(spec, plan.relative, out)  # a bad trace is refused before any server starts
    if not args.base_url:
        plan.check_runnable()
        plan.check_single_server("bench replay")
    model = tokenizer_folder(args, plan, cache) if args.base_url else resolve_model(plan, cache)
    out.mkdir(parents=True, exist_ok=True)
    sigterm_interrupts()
    with contextlib.suppress(KeyboardInterrupt), plan_endpoint(args, plan, model, cache, out) as endpoint:
        print(f"replaying {len(trace.requests)} requests of {path} at x{spec.speedup:g}", flush=True)
        result = run_replay(endpoint, Tokens.load(model), trace, spec, load_settings(plan), f"{path.stem}")
        result.config["trace"] = str(path)
        document = result.document()
        write_json(out / "replay.json", document)
        print(case_line(document))
        verdict = result.checks["replay"]
        print(f"  {verdict['outcome'].upper()}: {verdict['message']}; written to {out}")
        ok = verdict["outcome"] == "pass" and result.valid and not result.metrics["failed"]
        return 0 if ok else 1
    print(f"interrupted; nothing was written to {out}")
    return 130
