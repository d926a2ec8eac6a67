"""The one verdict type: every judgement llmqual makes of a number (a regression gate against a baseline or in an
A/B pair, an accuracy score against its baseline, a training check) is a Verdict, written into the case document
under `gates` (or `checks`) by `as_json` and read back by the report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

# pass and fail: the check decided. inconclusive: it measured but could not decide (noise above the resolution).
# not_shown: it ran but could not show what it checks here (no KV arrived, a counter the server does not export);
# never a pass (docs/results.md says how each outcome rolls up).
Outcome = Literal["pass", "fail", "inconclusive", "not_shown"]


@dataclass(frozen=True)
class Verdict:
    """`metric` judged `outcome`, said in `message`.

    `change` is signed so that negative is worse: relative to the baseline (a fraction) for the gates, absolute
    (`absolute=True`, in the metric's own unit) for an accuracy score. `low`/`high` bound it at the policy's
    confidence; `allowed` is how much worse a check allowed; `resolution` the smallest regression the comparison
    fails 95% of the time. `steps` and `numbers` carry what a training check found (the steps of NaNs or spikes).
    """

    metric: str
    outcome: Outcome
    message: str
    change: float | None = None
    low: float | None = None
    high: float | None = None
    baseline_mean: float | None = None
    candidate_mean: float | None = None
    n_baseline: int = 0
    n_candidate: int = 0
    resolution: float | None = None
    absolute: bool = False
    allowed: float | None = None
    steps: tuple[int, ...] = ()
    numbers: dict[str, float | None] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.outcome == "pass"

    @property
    def failed(self) -> bool:
        return self.outcome == "fail"

    def as_json(self) -> dict[str, object]:
        data = asdict(self)
        data["steps"] = list(self.steps)
        return data


def overall(verdicts: Sequence[Verdict]) -> Outcome | None:
    """fail if any fails, else not_shown if any is, else inconclusive if any is, else pass; None when nothing was
    judged."""
    outcomes = {v.outcome for v in verdicts}
    order: tuple[Outcome, ...] = ("fail", "not_shown", "inconclusive", "pass")
    return next((outcome for outcome in order if outcome in outcomes), None)
