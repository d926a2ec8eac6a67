"""`llmqual deploy ranktable|check-ranktable`: the rank table a deployment plan makes, and a check of any file.

    llmqual deploy ranktable --plan fixtures/plans/npu-qwen2.5-7b-pd-910b.yaml [--node N] [--hccl]
    llmqual deploy check-ranktable ranktable.json        # exit 1 with the problems, 0 when it is usable
    llmqual deploy up --plan F --node N                  # node N's instances, until Ctrl-C or SIGTERM

`ranktable` prints the v1.2 prefill/decode table vllm-ascend's LLMDataDist connector reads (harness.deploy
.ranktable), device IPs the plan leaves out read on this node (node N of the plan) with hccn_tool; `--hccl` prints
the v1.0 HCCL table of the same devices instead.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.config.plan import Plan, load_plan
from harness.deploy.multi import (
    Deployment,
    instance_configs,
    missing_device_ips,
    rank_table_of,
    role_of,
    write_rank_table,
)
from harness.deploy.ranktable import check_rank_table, hccl_rank_table
from harness.errors import HarnessError, PlanError
from harness.paths import cache_root, file_name
from harness.runtime.interrupt import sigterm_interrupts, wait_until_interrupted
from harness.served import resolve_model
from harness.server.vllm import ServerConfig, VLLMServer


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
    up = kinds.add_parser("up", help="start this node's instances of the plan's deployment and keep them up")
    up.add_argument("--plan", required=True)
    up.add_argument("--node", type=int, required=True, help="which of the plan's nodes this is")
    up.set_defaults(run=_cmd_up)


def _cmd_ranktable(args: argparse.Namespace) -> int:
    plan = _deployment_plan(args.plan, args.node)
    assert plan.deployment is not None
    if plan.platform != "npu":  # rank tables are Ascend's: HCCL's devices and their IPs
        raise HarnessError(
            f"{plan.source} is a {plan.platform} plan: a rank table lists Ascend NPU devices, and this plan has "
            "none (its instances need no rank table; `llmqual deploy up` starts them as they are)"
        )
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


def _deployment_plan(path: str, node: int) -> Plan:
    plan = load_plan(path)
    if plan.deployment is None:
        raise PlanError(plan.source, "deployment", "missing", "a rank table is made from a plan's deployment section")
    if not 0 <= node < len(plan.deployment.nodes):
        raise HarnessError(f"--node {node}: the plan has nodes 0..{len(plan.deployment.nodes) - 1}")
    return plan


def _cmd_up(args: argparse.Namespace, factory: Callable[[ServerConfig, Path], VLLMServer] = VLLMServer) -> int:
    """Node N's instances for a run on node 0: started with the rank table (NPU), kept up until interrupted."""
    plan = _deployment_plan(args.plan, args.node)
    plan.check_runnable()
    cache = cache_root()
    folder = cache / "logs" / f"deploy-{file_name(plan.name)}-node{args.node}"
    table = write_rank_table(plan, folder, args.node) if plan.platform == "npu" else None
    configs = instance_configs(plan, resolve_model(plan, cache), cache, table, args.node)
    sigterm_interrupts()
    print(f"starting node {args.node}'s {len(configs)} instances of {plan.name}; logs: {folder}", flush=True)
    with contextlib.suppress(KeyboardInterrupt), Deployment(configs, folder, factory, cache / "leases") as running:
        for server in running.servers:
            print(f"{role_of(server.config)} ready: {server.endpoint.base_url}", flush=True)
        wait_until_interrupted()
    return 0
