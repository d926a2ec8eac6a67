"""`llmqual plan explain --plan F` and `pytest --explain`: what a run of the plan would start, nothing started.

Works for any platform's plan on any machine: the plan's keys and values are checked (a bad plan is refused with
file, key and fix), its model, devices and tools need not be here.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from harness.config.plan import Plan, load_plan
from harness.config.plans import DEFAULT_PLANS
from harness.errors import HarnessError
from harness.explain.rehearsal import RUN_ID, rehearse
from harness.explain.steps import as_json, render
from harness.paths import cache_root, reports_root


def explanation(plan: Plan, reports: Path, as_document: bool = False) -> str:
    """The rehearsal of `plan` as text (or JSON), its run folder under `reports` and the cache as a run here
    would have them."""
    steps = rehearse(plan, cache_root(), reports.resolve() / RUN_ID)
    if as_document:
        return json.dumps(as_json(plan.name, plan.source, plan.platform, steps), indent=2)
    return render(plan.name, plan.source, plan.platform, steps)


def _cmd_explain(args: argparse.Namespace) -> int:
    print(explanation(load_plan(args.plan), reports_root(), args.json), end="" if not args.json else "\n")
    return 0


def add_parser(plan_commands: Any) -> None:
    """`plan explain` under the CLI's `plan` command."""
    explain = plan_commands.add_parser(
        "explain",
        help="print every container, server, instance, proxy and training launch a run of the plan would start "
        "(argv, environment with secrets masked, devices, files written), starting nothing",
    )
    explain.add_argument("--plan", required=True)
    explain.add_argument("--json", action="store_true", help="one JSON document")
    explain.set_defaults(run=_cmd_explain)


def pytest_explain(config: pytest.Config) -> None:
    """With `--explain`: print the rehearsal of the session's plan (`--plan`, else the CPU default) and end the
    session before anything is collected or started."""
    if not config.getoption("--explain", False):
        return
    option = config.getoption("--plan") or str(config.rootpath / DEFAULT_PLANS["cpu"])
    try:
        text = explanation(load_plan(option), Path(config.rootpath, config.getoption("--reports-dir")))
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from exc
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        with capture.global_and_fixture_disabled():
            print(text, end="")
    else:
        print(text, end="")
    pytest.exit("--explain: the run above was rehearsed, nothing was started", returncode=0)
