"""`llmqual ab`: builds measured against each other on this node, for CI gating.

    llmqual ab --plan fixtures/plans/cpu-tiny.yaml                      # the plan's ab: comparisons
    llmqual ab --plan P --comparison a-a --pairs 12                     # some of them, with other pair counts
    llmqual ab --plan P --candidate-vllm 0.31.0                         # the plan's build against another release
    llmqual ab --plan P --candidate-set max-num-seqs=8 --candidate-env VLLM_CPU_KVCACHE_SPACE=2 \\
        [--candidate-python VENV/bin/python | --candidate-image IMAGE | --candidate-model DIR] [--expect fail]

The --candidate-* options make one comparison named `candidate` against the plan's reference side and replace the
plan's list. Every side is checked before any server starts. Each comparison is written as soon as it is judged:
`<name>.json` (the case document: builds, every window, pairs set aside, verdicts), then `ab.csv` (a row per
comparison and metric), `ab.json` (the outcome) and `ab.html` (the report's A/B section) in --out (default
`reports/ab-<time>/`). Exit status: 0 every comparison passed (or gave the verdict it expects), 1 one failed (a
regression, or a planted fault not caught), 2 none failed but one could not decide (inconclusive), 3 the
comparison could not be made (bad input or a bad option, a server that would not start); 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import sys
import time
from html import escape
from pathlib import Path
from typing import Any, NoReturn

from harness.ab.compare import Compared, ab_cases, compare
from harness.ab.outputs import ABOutputs
from harness.ab.sides import build_of
from harness.bench.from_plan import load_settings
from harness.config.ab import ABComparison, ABSide, ABSpec
from harness.config.plan import Plan, load_plan
from harness.errors import HarnessError, PlanError
from harness.load.tokens import Tokens
from harness.paths import cache_root, reports_root
from harness.report.ab import ab_section
from harness.report.html import page
from harness.report.rundata import RunData
from harness.runtime.interrupt import sigterm_interrupts
from harness.served import resolve_model
from harness.server.pool import ServerPool

EXIT = {"pass": 0, "fail": 1, "inconclusive": 2}
COULD_NOT_COMPARE = 3
INTERRUPTED = 130


def add_parser(commands: Any) -> None:
    ab = commands.add_parser("ab", help="builds measured against each other on this node (exit 0/1/2: pass/fail/?)")
    ab.add_argument("--plan", required=True)
    ab.add_argument("--comparison", action="append", default=[], help="run only this comparison (repeatable)")
    ab.add_argument(
        "--pairs", type=_pair_count, default=None, help="pairs of every comparison run (default: the plan's)"
    )
    ab.add_argument("--out", type=Path, default=None, help="output folder (default reports/ab-<time>)")
    side = ab.add_argument_group("one candidate from the command line (replaces the plan's comparisons)")
    side.add_argument("--candidate-set", action="append", default=[], metavar="KEY=VALUE", help="vllm serve option")
    side.add_argument("--candidate-env", action="append", default=[], metavar="NAME=VALUE", help="server variable")
    side.add_argument("--candidate-model", default=None, help="another model folder")
    side.add_argument("--candidate-image", default=None, help="another container image")
    side.add_argument("--candidate-python", default=None, help="the interpreter of another environment with vLLM")
    side.add_argument("--candidate-vllm", default=None, help="a vLLM release, installed over this environment")
    side.add_argument("--expect", choices=("pass", "fail"), default=None, help="the verdict the candidate must get")
    ab.set_defaults(run=_cmd_ab)
    ab.error = functools.partial(_usage_error, ab)


def _usage_error(parser: argparse.ArgumentParser, message: str) -> NoReturn:
    """A bad option exits 3, "could not compare", not argparse's 2, which here means inconclusive."""
    parser.print_usage(sys.stderr)
    print(f"{parser.prog}: error: {message}", file=sys.stderr)
    sys.exit(COULD_NOT_COMPARE)


def _pair_count(text: str) -> int:
    limits = ABComparison.model_fields["pairs"].metadata
    low = next(m.ge for m in limits if hasattr(m, "ge"))
    high = next(m.le for m in limits if hasattr(m, "le"))
    if not text.isdigit() or not low <= int(text) <= high:
        raise argparse.ArgumentTypeError(f"{text!r}: a whole number of pairs from {low} to {high}")
    return int(text)


def _pairs(items: list[str], option: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise HarnessError(f"{option} {item!r}: expected KEY=VALUE")
        out[key] = _scalar(value) if option == "--candidate-set" else value
    return out


def _scalar(text: str) -> Any:
    """A command-line value as YAML would read it: numbers and booleans typed, the rest text."""
    with contextlib.suppress(json.JSONDecodeError):
        return json.loads(text)
    return text


def comparisons_of(plan: Plan, args: argparse.Namespace) -> ABSpec:
    """The A/B section to run: the plan's (some of its comparisons), or one candidate from the options."""
    given = {
        "server": _pairs(args.candidate_set, "--candidate-set"),
        "env": _pairs(args.candidate_env, "--candidate-env"),
        "model-path": args.candidate_model,
        "image": args.candidate_image,
        "python": args.candidate_python,
        "vllm": args.candidate_vllm,
    }
    from_options = any(given.values()) or args.expect is not None
    if plan.ab is None and not from_options:
        raise PlanError(plan.source, "ab", "the plan has no ab: section", "add one, or give --candidate-* options")
    spec = plan.ab or ABSpec(comparisons=(ABComparison(name="candidate"),))
    if from_options:
        try:
            side = ABSide.model_validate({k: v for k, v in given.items() if v})
            comparison = ABComparison(name="candidate", candidate=side, expect=args.expect)
            spec = ABSpec.model_validate({**spec.model_dump(by_alias=True), "comparisons": [comparison.model_dump()]})
        except ValueError as exc:
            raise HarnessError(f"--candidate-* options: {exc}") from None
    if args.comparison:
        unknown = sorted(set(args.comparison) - {c.name for c in spec.comparisons})
        if unknown:
            names = ", ".join(c.name for c in spec.comparisons)
            raise PlanError(
                plan.source, "ab.comparisons", f"no comparison named {', '.join(unknown)}", f"one of {names}"
            )
        spec = spec.model_copy(update={"comparisons": tuple(c for c in spec.comparisons if c.name in args.comparison)})
    if args.pairs is not None:
        spec = spec.model_copy(
            update={"comparisons": tuple(c.model_copy(update={"pairs": args.pairs}) for c in spec.comparisons)}
        )
    return spec


def exit_status(compared: list[Compared]) -> int:
    """fail if any comparison failed (a planted fault not caught counts), else inconclusive if any, else pass."""
    outcomes = {c.ok_outcome for c in compared}
    return next((EXIT[o] for o in ("fail", "inconclusive") if o in outcomes), EXIT["pass"])


def _write_page(out: Path, documents: list[dict[str, Any]], plan: Plan) -> None:
    run = RunData(out, {}, [], documents)
    heading = f"<h1>llmqual ab: {escape(plan.name)}</h1><p>Written {time.strftime('%Y-%m-%d %H:%M:%S')}.</p>"
    (out / "ab.html").write_text(page(f"llmqual ab {plan.name}", heading + ab_section(run)), encoding="utf-8")


def _cmd_ab(args: argparse.Namespace) -> int:
    try:
        plan = load_plan(args.plan)
        spec = comparisons_of(plan, args)
        plan.check_runnable()
        plan.check_single_server("ab")
        cache = cache_root()
        model = resolve_model(plan, cache)
        builds = {"reference": build_of(plan, spec.reference, "ab.reference", model, cache)}
        for i, c in enumerate(spec.comparisons):  # every side checked before any server starts
            builds[c.name] = build_of(plan, c.candidate, f"ab.comparisons.{i}.candidate", model, cache, f"ab-{c.name}")
    except HarnessError as exc:
        print(f"llmqual ab: cannot compare: {exc}", flush=True)
        return COULD_NOT_COMPARE
    for build in builds.values():
        if build.unmet:
            unmet = "; ".join(build.unmet)
            print(f"note: {build.description} serves vLLM {build.vllm_version}; its requirements not met here: {unmet}")
    out = args.out or reports_root() / time.strftime("ab-%Y%m%d-%H%M%S")
    outputs = ABOutputs(out)
    tokens, settings, policy = Tokens.load(model), load_settings(plan), spec.policy(plan.gates.policy())
    sigterm_interrupts()  # a SIGTERM stops the servers as Ctrl-C does
    done: list[Compared] = []
    try:
        with ServerPool(out / "logs", lease_dir=cache / "leases") as pool:
            for c in spec.comparisons:
                sides = {"reference": builds["reference"], "candidate": builds[c.name]}
                servers = {
                    "reference": pool.get(sides["reference"].config),
                    "candidate": pool.get(sides["candidate"].config, alongside=sides["reference"].config),
                }
                print(f"{c.name}: {sides['candidate'].description} against {sides['reference'].description}")
                compared = compare(spec, c, servers, sides, tokens, settings, policy, ab_cases(spec, plan))
                outputs.add(compared)
                _write_page(out, outputs.documents, plan)
                print(f"{c.name}: {compared.ok_outcome.upper()}: {compared.message}", flush=True)
                done.append(compared)
    except KeyboardInterrupt:
        print(f"llmqual ab: interrupted; the servers were stopped; what was judged is in {out}")
        return INTERRUPTED
    except HarnessError as exc:
        print(f"llmqual ab: cannot compare: {exc}; what was judged is in {out}")
        return COULD_NOT_COMPARE
    status = exit_status(done)
    outputs.finish(status)
    print(f"written to {out} (exit {status})")
    return status
