"""`llmqual deploy ranktable|check-ranktable`: the rank table a deployment plan makes, and a check of any file.

    llmqual deploy ranktable --plan fixtures/plans/npu-qwen2.5-7b-pd-910b.yaml [--node N] [--hccl]
    llmqual deploy check-ranktable ranktable.json        # exit 1 with the problems, 0 when it is usable

`ranktable` prints the v1.2 prefill/decode table vllm-ascend's LLMDataDist connector reads (harness.deploy
.ranktable), device IPs the plan leaves out read on this node (node N of the plan) with hccn_tool; `--hccl` prints
the v1.0 HCCL table of the same devices instead.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from harness.config.plan import load_plan
from harness.deploy.multi import missing_device_ips, rank_table_of
from harness.deploy.ranktable import check_rank_table, hccl_rank_table
from harness.errors import HarnessError, PlanError


def add_parser(commands: Any) -> None:
    deploy = commands.add_parser("deploy", help="prefill/decode deployments")
    kinds = deploy.add_subparsers(dest="deploy_command", required=True)
    table = kinds.add_parser("ranktable", help="print the plan's rank table")
    table.add_argument("--plan", required=True)
    table.add_argument("--node", type=int, default=0, help="the plan's node this runs on (reads its device IPs)")
    table.add_argument("--hccl", action="store_true", help="the v1.0 HCCL table instead of the v1.2 P/D one")
    table.set_defaults(run=_cmd_ranktable)
    check = kinds.add_parser("check-ranktable", help="check a rank-table file (v1.2 P/D, or v1.0 HCCL)")
    check.add_argument("file", type=Path)
    check.set_defaults(run=_cmd_check)


def _cmd_ranktable(args: argparse.Namespace) -> int:
    plan = load_plan(args.plan)
    if plan.deployment is None:
        raise PlanError(plan.source, "deployment", "missing", "a rank table is made from a plan's deployment section")
    if not 0 <= args.node < len(plan.deployment.nodes):
        raise HarnessError(f"--node {args.node}: the plan has nodes 0..{len(plan.deployment.nodes) - 1}")
    if args.hccl:
        table: dict[str, Any] = hccl_rank_table(plan.deployment, missing_device_ips(plan, args.node))
    else:
        table = dict(rank_table_of(plan, args.node))
    print(json.dumps(table, indent=4))
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    try:
        table = json.loads(args.file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise HarnessError(f"cannot read {args.file}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        print(f"{args.file}: not JSON ({exc})")
        return 1
    problems = check_rank_table(table)
    for problem in problems:
        print(f"{args.file}: {problem}")
    if not problems:
        print(f"{args.file}: ok (version {table.get('version')})")
    return 1 if problems else 0
