"""`llmqual probe capacity`: the longest max-model-len per card count for a plan's model, as the guides' appendix.

    llmqual probe capacity --plan fixtures/plans/cpu-tiny-capacity.yaml [--out DIR]

Starts real servers (one per length tried, never two at once) and writes `capacity.csv`, `capacity.json` and
`attempts.jsonl` to DIR (default `reports/capacity-<time>/`), each as soon as it has something to say.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path
from typing import Any

from harness.capacity.probe import capacity_spec, probe_model, run_probe
from harness.capacity.table import table_csv
from harness.config.plan import load_plan
from harness.paths import cache_root, reports_root
from harness.runtime.interrupt import sigterm_interrupts
from harness.served import serving_config


def add_parser(commands: Any) -> None:
    probe = commands.add_parser("probe", help="capacity questions answered by measurement")
    kinds = probe.add_subparsers(dest="probe_command", required=True)
    capacity = kinds.add_parser("capacity", help="the longest max-model-len per card count (suites.capacity)")
    capacity.add_argument("--plan", required=True)
    capacity.add_argument("--out", type=Path, default=None, help="output folder (default reports/capacity-<time>)")
    capacity.set_defaults(run=_cmd_capacity)


def _say(line: str) -> None:
    print(line, flush=True)


def _cmd_capacity(args: argparse.Namespace) -> int:
    plan = load_plan(args.plan)
    spec = capacity_spec(plan)
    plan.check_runnable()
    plan.check_single_server("probe capacity")
    cache = cache_root()
    model = probe_model(plan, spec, cache)
    out = args.out or reports_root() / time.strftime("capacity-%Y%m%d-%H%M%S")
    sigterm_interrupts()  # a SIGTERM stops the server of the step in progress, as Ctrl-C does
    with contextlib.suppress(KeyboardInterrupt):
        outcome = run_probe(plan, spec, model, serving_config(plan, model, cache), out, _say, leases=cache / "leases")
        print(table_csv(outcome.rows), end="")
        print(f"written to {out}")
        return 0 if all(row.max_model_len is not None for row in outcome.rows) else 1
    print(f"interrupted; what was measured is in {out}")
    return 130
