"""`llmqual bench sla`: the highest request rate within a plan's latency objectives (its suites.sla section).

    llmqual bench sla --plan fixtures/plans/cpu-tiny-capacity.yaml [--base-url URL] [--out DIR]

Against the server at --base-url, else the plan's own server, started for the search and stopped after. Each step
is appended to DIR/steps.jsonl as it ends (default `reports/sla-<time>/`), the knee to DIR/knee.json at the end.
Exit 0 when the knee is bracketed (a rate that held, the next one up that did not), 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path
from typing import Any

from harness.bench.from_plan import load_settings
from harness.bench.plan_server import plan_endpoint, tokenizer_folder
from harness.capacity.sla import knee_result, run_sla_search
from harness.config.plan import load_plan
from harness.errors import PlanError
from harness.load.tokens import Tokens
from harness.paths import cache_root, reports_root
from harness.results.case import write_json
from harness.runtime.interrupt import sigterm_interrupts
from harness.served import resolve_model


def add_parser(kinds: Any) -> None:
    sla = kinds.add_parser("sla", help="the highest request rate within the plan's objectives (suites.sla)")
    sla.add_argument("--plan", required=True)
    sla.add_argument("--base-url", default=None, help="a running server (default: start the plan's)")
    sla.add_argument("--api-key", default=None)
    sla.add_argument("--served-model-name", default=None)
    sla.add_argument(
        "--tokenizer", default=None, help="with --base-url: the served model's tokenizer (default: the plan's model's)"
    )
    sla.add_argument("--out", type=Path, default=None, help="output folder (default reports/sla-<time>)")
    sla.set_defaults(run=_cmd_sla)


def _cmd_sla(args: argparse.Namespace) -> int:
    plan = load_plan(args.plan)
    spec = plan.suites.sla
    if spec is None:
        raise PlanError(
            plan.source, "suites.sla", "missing", "add the objectives and the rate bracket (docs/capacity.md)"
        )
    plan.check_runnable()
    plan.check_single_server("bench sla")
    cache = cache_root()
    # Against a running server only the tokenizer is needed: the plan's, else the base model's (a tiny one is built
    # in seconds; its trained checkpoint, which training would make, has the same tokenizer).
    model = tokenizer_folder(args, plan, cache) if args.base_url else resolve_model(plan, cache)
    out: Path = args.out or reports_root() / time.strftime("sla-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    sigterm_interrupts()
    with contextlib.suppress(KeyboardInterrupt), plan_endpoint(args, plan, model, cache, out) as endpoint:
        found, steps = run_sla_search(endpoint, Tokens.load(model), spec, load_settings(plan), out, _say)
        write_json(out / "knee.json", knee_result(found, spec, steps).document())
        if found.knee is None:
            print(f"no rate met the objectives, not even rate-low {spec.rate_low:g} req/s; steps in {out}")
            return 1
        above = f", not at {found.above:g}" if found.above is not None else " (rate-high: raise it to bracket)"
        print(f"sustainable at {found.knee:g} req/s{above}; written to {out}")
        return 0 if found.above is not None and found.stopped is None else 1
    print(f"interrupted; the steps measured are in {out}")
    return 130


def _say(line: str) -> None:
    print(line, flush=True)
