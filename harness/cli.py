"""`llmqual`: the harness's library from the command line, for ad-hoc runs outside pytest.

llmqual platform                 which platforms are usable here, and why not
llmqual plan check FILE...       validate plans (exit 2 with file, key and fix on the first bad one)
llmqual plan explain --plan F    what a run of the plan would start (argv, env, devices, files), nothing started
llmqual model build [--plan F]   build (or find) the tiny model of a plan and print its folder
llmqual image build              build (or find) the CPU base image container plans name llmqual/cpu-base
llmqual serve --plan F           start the plan's vLLM server, print its URL, serve until Ctrl-C
llmqual bench static|dynamic     serving benchmarks against a running server (see harness/bench/command.py)
llmqual dataset generate|to-sharegpt   make benchmark datasets
llmqual deploy ranktable --plan F   a deployment's rank table; `deploy check-ranktable FILE` checks one
llmqual probe capacity --plan F  the longest max-model-len per card count (starts servers)
llmqual eval LM_EVAL_ARGS...     lm-eval's own command line (`--model vllm` runs on vLLM's CPU build too)
llmqual train parse-log FILE     a training log's loss curve (megatron, llamafactory, hf) as JSON
llmqual report RUN               re-render a run's HTML report (RUN: folder, run id or latest)
llmqual baseline update RUN      append a run's measurements to its plan's baseline file
llmqual compare RUN_A RUN_B      every gated metric of two runs, with the gate's verdict
llmqual npu smi-parse FILE       saved npu-smi output as JSON
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from harness.ab import command as ab_command
from harness.accuracy import command as eval_command
from harness.bench import command as bench_command
from harness.capacity import command as probe_command
from harness.config.container import ContainerSpec
from harness.config.plan import PLATFORMS, Plan, load_plan
from harness.deploy import command as deploy_command
from harness.errors import HarnessError
from harness.explain import command as explain_command
from harness.load import command as dataset_command
from harness.report import command as report_command
from harness.report import trends as trends_command
from harness.runtime.interrupt import sigterm_interrupts, wait_until_interrupted
from harness.training.parsers import PARSERS

DEFAULT_PLAN = "fixtures/plans/cpu-tiny.yaml"


def _cmd_platform(args: argparse.Namespace) -> int:
    from harness.platform.detect import detect

    for name in PLATFORMS:
        found = detect(name)
        print(f"{name}: {'available' if found.available else 'absent'} ({found.reason})")
    return 0


def _cmd_plan_check(args: argparse.Namespace) -> int:
    for path in args.files:
        plan = load_plan(path)
        if not args.schema_only:
            plan.check_runnable()
            if plan.container is not None:
                _check_container(plan.container)
        checked = "keys and values only" if args.schema_only else "keys, values and this machine"
        print(f"{path}: ok ({plan.name}, platform {plan.platform}; {checked})")
    return 0


def _check_container(spec: ContainerSpec) -> None:
    """The plan's container can start here: a Docker daemon answers, the image is on it (or is the harness's
    own, which a run builds), and the metadata block can be added if the plan asks for it."""
    from harness.runtime.container import ContainerError, docker_problem, require_image
    from harness.runtime.image import is_base_image
    from harness.runtime.metadata import MetadataBlockError, block_problem

    problem = docker_problem()
    if problem is not None:
        raise ContainerError(f"the plan's container section needs Docker, and {problem}")
    if not is_base_image(spec.image):
        require_image(spec.image)
    blocked = block_problem() if spec.block_metadata else None
    if blocked is not None:
        raise MetadataBlockError(f"container.block-metadata: {blocked}")


def _cmd_model_build(args: argparse.Namespace) -> int:
    from harness.paths import cache_root
    from harness.served import resolve_model

    plan = load_plan(args.plan)
    plan.check_runnable()
    print(resolve_model(plan, cache_root()))
    return 0


def _cmd_image_build(args: argparse.Namespace) -> int:
    from harness.paths import cache_root
    from harness.runtime.container import ContainerError, docker_problem
    from harness.runtime.image import ensure_base_image

    problem = docker_problem()
    if problem is not None:
        raise ContainerError(problem)
    print(ensure_base_image(cache_root(), progress=lambda line: print(line, file=sys.stderr)))
    return 0


INTERRUPTED_EXIT = 130  # a shell's code for a command stopped by SIGINT


def _cmd_serve(args: argparse.Namespace) -> int:
    from harness.paths import cache_root
    from harness.served import resolve_model, serving_config
    from harness.server.pool import ServerPool
    from harness.server.vllm import VLLMServer

    plan = load_plan(args.plan)
    plan.check_runnable()
    if args.node_rank is not None:
        return _serve_node_rank(plan, args)
    plan.check_single_server("serve")
    cache = cache_root()
    config = serving_config(plan, resolve_model(plan, cache), cache)
    log = Path(args.log or cache / "logs" / f"serve-{config.key()}.log")
    # Through a pool on the host's lease folder: its cards are leased as a pytest run's are, so the two never share
    # a card on a shared node (the CPU's cores are placed, not leased).
    pool = ServerPool(log.parent, lease_dir=cache / "leases", factory=lambda c, _: VLLMServer(c, log))
    # SIGTERM stops it as Ctrl-C does, also while it waits for readiness (the server group is stopped either way).
    sigterm_interrupts()
    print(f"starting vLLM for {plan.name}; log: {log}", flush=True)
    ready = False
    with contextlib.suppress(KeyboardInterrupt), pool:
        server = pool.get(config)
        ready = True
        print(f"ready in {server.startup_s:.1f} s: {server.endpoint.base_url} (model {server.endpoint.model})")
        wait_until_interrupted()
    if not ready:  # stopped while it waited for readiness: never served
        print(f"interrupted before the server was ready; it was stopped (log: {log})", file=sys.stderr)
        return INTERRUPTED_EXIT
    print("stopped", file=sys.stderr)
    return 0


def _serve_node_rank(plan: Plan, args: argparse.Namespace) -> int:
    from harness.paths import cache_root
    from harness.served import resolve_model, serving_config
    from harness.server.node_rank import checked_rank, serve_rank

    master_port = checked_rank(plan, args.node_rank)
    cache = cache_root()
    config = serving_config(plan, resolve_model(plan, cache), cache)
    log = Path(args.log or cache / "logs" / f"serve-{config.key()}.node{args.node_rank}.log")
    sigterm_interrupts()
    try:
        return serve_rank(config, args.node_rank, master_port, log)
    except KeyboardInterrupt:
        print(f"node rank {args.node_rank} stopped", file=sys.stderr)
        return 0


def _cmd_npu_smi_parse(args: argparse.Namespace) -> int:
    from harness.platform.npu_smi import info_as_json, parse_info, parse_list, parse_usages

    try:
        text = Path(args.file).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise HarnessError(f"cannot read {args.file}: {exc.strerror}") from exc
    if "Usage Rate(%)" in text and "Bus-Id" not in text:
        document: object = {"usages": [dataclasses.asdict(u) for u in parse_usages(text)]}
    elif "Total Count" in text and "Bus-Id" not in text:
        listing = parse_list(text)
        document = {"total_count": listing.total_count, "chips_per_npu": listing.chips_per_npu}
    else:
        document = info_as_json(parse_info(text))
    print(json.dumps(document, indent=2 if not args.json else None))
    return 0


def _cmd_train_parse_log(args: argparse.Namespace) -> int:
    from harness.training.parsers import parse_log

    try:
        text = Path(args.file).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise HarnessError(f"cannot read {args.file}: {exc.strerror}") from exc
    curve = parse_log(text, args.format)
    document = (curve.losses_only() if args.losses_only else curve).as_json()
    print(json.dumps(document, indent=None if args.json else 2, allow_nan=True))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmqual", description=__doc__.split("\n")[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("platform", help="which platforms are usable here").set_defaults(run=_cmd_platform)

    plan = commands.add_parser("plan", help="plan files").add_subparsers(dest="plan_command", required=True)
    check = plan.add_parser("check", help="validate plans")
    check.add_argument("files", nargs="+")
    check.add_argument(
        "--schema-only",
        action="store_true",
        help="check keys and values only, not this machine (model paths, baselines, cores): for a plan written for "
        "another node",
    )
    check.set_defaults(run=_cmd_plan_check)
    explain_command.add_parser(plan)

    model = commands.add_parser("model", help="models").add_subparsers(dest="model_command", required=True)
    build = model.add_parser("build", help="build the plan's tiny model (or find the model folder)")
    build.add_argument("--plan", default=DEFAULT_PLAN)
    build.set_defaults(run=_cmd_model_build)

    image = commands.add_parser("image", help="container images").add_subparsers(dest="image_command", required=True)
    image.add_parser("build", help="build the CPU base image (llmqual/cpu-base)").set_defaults(run=_cmd_image_build)

    serve = commands.add_parser("serve", help="serve the plan's model until interrupted")
    serve.add_argument("--plan", default=DEFAULT_PLAN)
    serve.add_argument("--log", default=None, help="server log file")
    serve.add_argument(
        "--node-rank",
        type=int,
        default=None,
        help="start only this node rank of a spanning server (docs/multinode.md)",
    )
    serve.set_defaults(run=_cmd_serve)

    bench_command.add_parser(commands)
    ab_command.add_parser(commands)
    dataset_command.add_parser(commands)
    eval_command.add_parser(commands)
    deploy_command.add_parser(commands)
    probe_command.add_parser(commands)
    report_command.add_parser(commands)
    trends_command.add_parser(commands)

    train = commands.add_parser("train", help="training logs").add_subparsers(dest="train_command", required=True)
    parse = train.add_parser("parse-log", help="a training log's loss curve as JSON")
    parse.add_argument("file")
    parse.add_argument("--format", default="auto", choices=("auto", *PARSERS))
    parse.add_argument("--json", action="store_true", help="one compact JSON document")
    parse.add_argument(
        "--losses-only", action="store_true", help="steps and losses only: a reference curve for suites.training"
    )
    parse.set_defaults(run=_cmd_train_parse_log)

    npu = commands.add_parser("npu", help="Ascend tools").add_subparsers(dest="npu_command", required=True)
    smi = npu.add_parser("smi-parse", help="parse saved npu-smi output")
    smi.add_argument("file")
    smi.add_argument("--json", action="store_true", help="one compact JSON document")
    smi.set_defaults(run=_cmd_npu_smi_parse)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, unread = parser.parse_known_args(argv)
    if args.command == "eval":  # lm_eval's own options pass through unread
        args.lm_eval_args = unread
    elif unread:
        parser.error(f"unrecognized arguments: {' '.join(unread)}")
    try:
        code: int = args.run(args)
    except HarnessError as exc:
        print(f"llmqual: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C (or SIGTERM where a command turns it into one): said, not a traceback
        print(f"llmqual {args.command}: interrupted; whatever it started has been stopped", file=sys.stderr)
        return INTERRUPTED_EXIT
    return code


if __name__ == "__main__":
    sys.exit(main())
