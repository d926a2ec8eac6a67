"""`llmqual report RUN`, `llmqual baseline update RUN`, `llmqual compare RUN_A RUN_B`.

RUN is a run folder, a run id under --reports (default `reports`), or `latest`.

    llmqual report latest                      re-render reports/<run>/report.html (and cases.json)
    llmqual baseline update latest [--plan P]  append the run's measurements to the plan's baseline file
    llmqual compare RUN_A RUN_B                a table of every gated metric of the cases both runs measured,
                                               RUN_A as the reference, with the gate's verdict; exit 1 on a fail
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from harness.config.plan import load_plan
from harness.errors import HarnessError
from harness.gates.gate import GatePolicy
from harness.gates.verdict import Verdict
from harness.paths import reports_root
from harness.report.html import write_report
from harness.report.rundata import RunData, load_run, resolve_run
from harness.report.summary import overall_verdict, suite_lines, summarise
from harness.results.baseline import RunBaseline, case_key, compare_samples, gated_values, load_baseline, save_baseline
from harness.results.baseline import update as update_baseline
from harness.results.index import RunIndex, drifts_of


def _run(args: argparse.Namespace, given: str) -> RunData:
    return load_run(resolve_run(given, Path(args.reports)))


def _cmd_report(args: argparse.Namespace) -> int:
    run = _run(args, args.run_ref)
    path = write_report(run, RunIndex(Path(args.reports)))
    summaries = summarise(run)
    for line in suite_lines(summaries):
        print(line)
    if run.incomplete:
        print(f"INCOMPLETE: {run.incomplete}")
    print(f"overall: {overall_verdict(summaries, run.incomplete)}")
    print(f"report: {path}")
    return 0


def _plan_of(run: RunData, given: str | None) -> Path:
    if given:
        return Path(given)
    plans = list(run.summary.get("plans", {}).values())
    if len(plans) != 1:
        raise HarnessError(f"run {run.run_id} names {len(plans)} plans; choose one with --plan")
    return Path(plans[0])


def _cmd_baseline_update(args: argparse.Namespace) -> int:
    run = _run(args, args.run_ref)
    plan = load_plan(_plan_of(run, args.plan))
    path = Path(args.out) if args.out else plan.baseline_path()
    environment = run.summary.get("environment", {})
    baseline = load_baseline(path) or RunBaseline(plan.name, plan.platform, environment.get("device"))
    if baseline.plan != plan.name:
        raise HarnessError(f"{path} is the baseline of plan {baseline.plan!r}, not {plan.name!r}; give --out")
    if run.incomplete:
        raise HarnessError(f"run {run.run_id} is no baseline: {run.incomplete}; record a run that finished")
    measured = [d for d in run.documents if gated_values(d)]
    updated = update_baseline(baseline, run.run_id, measured, plan.gates.keep_samples)
    taken = sum(1 for key, entry in updated.cases.items() if entry != baseline.cases.get(key))
    if not taken:
        invalid = sum(1 for d in measured if not d.get("valid", True))
        raise HarnessError(
            f"run {run.run_id} has no valid gated measurement to record ({len(measured)} gated cases, {invalid} "
            "invalid: the client fell behind); nothing was written"
        )
    save_baseline(path, updated)
    print(f"{path}: {taken} cases from run {run.run_id} ({len(updated.runs)} runs recorded)")
    return 0


def _samples(run: RunData) -> dict[str, dict[str, Any]]:
    return {case_key(d): gated_values(d) for d in run.documents if d.get("valid", True)}


def _policy(args: argparse.Namespace, run: RunData) -> tuple[GatePolicy, str]:
    """The gate policy of a comparison: the judged run's plan's gates, unless options override them."""
    try:
        plan = load_plan(_plan_of(run, args.plan))
        policy, source = plan.gates.policy(), f"the gates of plan {plan.name}"
    except HarnessError as exc:
        policy, source = GatePolicy(), f"the harness's default gates ({exc})"
    given = {k: v for k in ("tolerance", "detect", "confidence", "between_runs") if (v := getattr(args, k)) is not None}
    if given:
        source += ", with " + ", ".join(f"{k} {v}" for k, v in given.items()) + " from the command line"
    return dataclasses.replace(policy, **given), source


def _cmd_compare(args: argparse.Namespace) -> int:
    a, b = _run(args, args.run_a), _run(args, args.run_b)
    ids = {"A": a.identity(), "B": b.identity()}
    for side, run in (("A", a), ("B", b)):
        facts = ids[side]
        print(f"{side} = {run.run_id}: plan {facts['plan']}, model {facts['model']}, device {facts['device']}")
        if run.incomplete:
            print(f"{side} IS INCOMPLETE: {run.incomplete}; only the cases it finished are compared")
    differ = [k for k in ("plan", "model") if ids["A"][k] != ids["B"][k]]
    if differ and not args.allow_different:
        raise HarnessError(
            f"runs {a.run_id} and {b.run_id} measured different {' and '.join(differ)}s "
            f"({'; '.join(ids['A'][k] + ' vs ' + ids['B'][k] for k in differ)}): their difference is no regression. "
            "Compare runs of one plan and model, or pass --allow-different to see the numbers without verdicts"
        )
    policy, source = _policy(args, b)
    print(
        f"gates: {source}: tolerance {policy.tolerance:.0%}, a pass rules out {policy.detect:.0%}, "
        f"confidence {policy.confidence:.0%}, run-to-run drift {policy.between_runs:.0%}"
    )
    metrics = {m for d in b.documents for m in gated_values(d)}
    measure = not args.plan_drift and args.between_runs is None  # a drift given on the command line is used as given
    drifts = drifts_of(RunIndex(Path(args.reports)), ids["B"]["plan"], sorted(metrics)) if measure else {}
    for drift in drifts.values():
        print(f"{drift.metric}: {drift.describe()}, instead of the plan's {policy.between_runs:.0%}")
    rows = compare_samples(_samples(a), _samples(b), policy, drifts)
    if not rows:
        raise HarnessError(f"runs {a.run_id} and {b.run_id} share no gated case")
    withheld = [k for k in ("plan", "model", "device") if ids["A"][k] != ids["B"][k]]
    if withheld:  # the numbers are shown, the verdicts withheld
        print(f"DIFFERENT {', '.join(withheld).upper()}: no verdict across them, every row is inconclusive")
        rows = [(key, dataclasses.replace(r, outcome="inconclusive")) for key, r in rows]
    header = f"{'case':<34} {'metric':<22} {'A mean':>12} {'B mean':>12} {'change':>8}  verdict"
    print(f"{header}\n{'-' * len(header)}")
    for key, result in rows:
        change = "" if result.change is None else f"{result.change:+.2%}"
        resolution = "" if result.resolution is None else f", resolution {result.resolution:.1%}"
        print(
            f"{key:<34} {result.metric:<22} {_num(result.baseline_mean):>12} {_num(result.candidate_mean):>12} "
            f"{change:>8}  {result.outcome.upper()} (n={result.n_baseline}/{result.n_candidate}{resolution})"
        )
    outcomes = [r.outcome for _, r in rows]
    print(", ".join(f"{outcomes.count(o)} {o}" for o in ("pass", "fail", "inconclusive")))
    if not withheld and set(outcomes) == {"inconclusive"}:
        print(undecided_reason([r for _, r in rows], policy))
    return 1 if "fail" in outcomes else 0


def undecided_reason(verdicts: list[Verdict], policy: GatePolicy) -> str:
    """One line on why no verdict was reached, and what would decide."""
    resolutions = sorted(r.resolution for r in verdicts if r.resolution is not None)
    if not resolutions:
        return "every verdict is inconclusive: no comparison had enough measurements (see each row's reason)"
    median = resolutions[len(resolutions) // 2]
    return (
        f"every verdict is inconclusive: these runs resolve a change of {median:.1%} (median over metrics) where a "
        f"pass must rule out {policy.detect:.0%} (run-to-run drift {policy.between_runs:.0%} included); to decide, "
        "compare the builds interleaved in one run (the plan's ab section), raise gates.repeats, or use a quieter host"
    )


def _num(value: float | None) -> str:
    return "missing" if value is None else f"{value:,.2f}"


def add_parser(commands: Any) -> None:
    report = commands.add_parser("report", help="re-render a run's HTML report")
    report.add_argument("run_ref", metavar="RUN", help="run folder, run id or latest")
    report.add_argument("--reports", default=str(reports_root()))
    report.set_defaults(run=_cmd_report)

    baseline = commands.add_parser("baseline", help="run baselines").add_subparsers(
        dest="baseline_command", required=True
    )
    update = baseline.add_parser("update", help="append a run's measurements to its plan's baseline file")
    update.add_argument("run_ref", metavar="RUN", help="run folder, run id or latest")
    update.add_argument("--plan", default=None, help="the plan (default: the one the run used)")
    update.add_argument("--out", default=None, help="baseline file (default: the plan's)")
    update.add_argument("--reports", default=str(reports_root()))
    update.set_defaults(run=_cmd_baseline_update)

    compare = commands.add_parser("compare", help="compare two runs metric by metric, with gate verdicts")
    compare.add_argument("run_a", help="the reference run")
    compare.add_argument("run_b", help="the run judged")
    compare.add_argument("--reports", default=str(reports_root()))
    compare.add_argument("--plan", default=None, help="whose gates judge (default: the plan run B used)")
    compare.add_argument(
        "--allow-different",
        action="store_true",
        help="show runs of different plans or models side by side (no verdicts; refused without it)",
    )
    for name, meaning in (("tolerance", "a regression must be worse than this"), ("detect", "a pass rules out this")):
        compare.add_argument(f"--{name}", type=float, default=None, help=f"{meaning} (default: the plan's)")
    compare.add_argument("--confidence", type=float, default=None, help="of each bound (default: the plan's)")
    compare.add_argument(
        "--between-runs", type=float, default=None, help="run-to-run drift of a run's mean (default: the plan's)"
    )
    compare.add_argument(
        "--plan-drift",
        action="store_true",
        help="use the plan's drift even where this host's past runs measured one (--between-runs implies it)",
    )
    compare.set_defaults(run=_cmd_compare)
