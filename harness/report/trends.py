"""`llmqual trends`: one metric of every case over a plan's last runs, as a table (cases x runs) with each case's
run-to-run spread, from the run index.

The spread is the relative standard deviation of the case's value across runs: on a machine class, the typical
spread of the gated metrics is what `gates.between-runs` should be set to (docs/measurement.md). An invalid
measurement (the client fell behind) is left out, not averaged in.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError
from harness.paths import reports_root
from harness.results.index import Measured, RunIndex

if TYPE_CHECKING:
    import pandas as pd

SPREAD = "rel_sd"


def trend_table(measured: Sequence[Measured]) -> pd.DataFrame:
    """Rows (suite, case), a column per run (oldest first), then `runs` (how many measured it validly) and `rel_sd`
    (its relative standard deviation across those runs; missing with fewer than 2)."""
    import pandas as pd  # here, not at import: every llmqual command would pay for it

    frame = pd.DataFrame([vars(m) for m in measured if m.valid and m.value is not None])
    if frame.empty:
        return frame
    order = frame.drop_duplicates("run_id").sort_values("started")["run_id"].tolist()
    table = frame.pivot_table(index=["suite", "case_id"], columns="run_id", values="value", aggfunc="last")
    table = table.reindex(columns=order)
    values = table[order]
    table["runs"] = values.count(axis=1)
    table[SPREAD] = values.std(axis=1, ddof=1) / values.mean(axis=1).abs()
    return table


def _cmd_trends(args: argparse.Namespace) -> int:
    index = RunIndex(Path(args.reports))
    table = trend_table(index.measured(args.plan, args.metric, args.runs))
    if table.empty:
        raise HarnessError(
            f"no finished run of plan {args.plan!r} measured {args.metric} in {index.path}; check the plan's name "
            "(reports name it) and the metric (docs/metrics.md)"
        )
    if args.csv is not None:
        table.to_csv(args.csv)
    shown = table.rename(columns={c: c[:15] for c in table.columns if c not in ("runs", SPREAD)})
    shown[SPREAD] = [f"{v:.1%}" if v == v else "-" for v in table[SPREAD]]  # v != v: NaN, fewer than 2 runs
    print(f"{args.metric} of plan {args.plan} over its last {shown.shape[1] - 2} finished run(s):")
    print(shown.to_string(float_format=lambda v: f"{v:,.4g}", na_rep="-"))
    spreads = table[SPREAD].dropna()
    if not spreads.empty:
        print(f"run-to-run spread (rel. SD): median {spreads.median():.1%}, max {spreads.max():.1%} "
              f"over {len(spreads)} case(s): a measure of gates.between-runs on this machine")  # fmt: skip
    return 0


def add_parser(commands: Any) -> None:
    trends = commands.add_parser("trends", help="one metric of every case over a plan's last runs, with its spread")
    trends.add_argument("--plan", required=True, help="the plan's name, as runs record it (e.g. cpu-tiny)")
    trends.add_argument("--metric", default="output_throughput", help="a metric name (docs/metrics.md)")
    trends.add_argument("--runs", type=int, default=10, help="how many of the plan's last finished runs")
    trends.add_argument("--reports", default=str(reports_root()), help="the reports folder holding index.sqlite")
    trends.add_argument("--csv", type=Path, default=None, help="also write the table as CSV")
    trends.set_defaults(run=_cmd_trends)
