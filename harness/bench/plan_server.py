"""The server a plan-driven command measures: a running one (--base-url), else the plan's own, started for the
command and stopped after; and the tokenizer it needs either way. Shared by `llmqual bench sla` and `replay`."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from pathlib import Path

from harness.config.plan import Plan
from harness.model.resolve import base_model
from harness.served import serving_config
from harness.server.endpoint import Endpoint, connect_endpoint
from harness.server.pool import ServerPool
from harness.server.vllm import VLLMServer


@contextlib.contextmanager
def plan_endpoint(args: argparse.Namespace, plan: Plan, model: Path, cache: Path, out: Path) -> Iterator[Endpoint]:
    if args.base_url:
        yield connect_endpoint(args.base_url, args.api_key, args.served_model_name or plan.server.served_model_name)
        return
    log = out / "vllm.log"  # leased like a pytest run's server: the two never share a card on a shared node
    with ServerPool(out, lease_dir=cache / "leases", factory=lambda config, _: VLLMServer(config, log)) as pool:
        yield pool.get(serving_config(plan, model, cache)).endpoint


def tokenizer_folder(args: argparse.Namespace, plan: Plan, cache: Path) -> Path:
    if args.tokenizer:
        return Path(args.tokenizer)
    if plan.model.tokenizer:
        return plan.relative(plan.model.tokenizer)
    return base_model(plan, cache)
