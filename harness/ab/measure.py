"""A/B measurement: a reference and a candidate server measured in turn in one run, and the paired verdict.

Both sides are warmed up, then measured in pairs with the same static case and the protocol's window, in blocks of
two pairs whose order is AB BA or BA AB (a seeded coin per block), so that neither side always profits from going
first and a steady drift cancels within the block; every window gets prompts of its own. With `idle: pause` the
side not being measured is stopped for the window (harness.server.pause). Each window records the cores that
processes outside the harness kept busy (harness.runtime.cputime); a pair with a window above `max-outside-cpu` is
set aside, counted, and replaced by another pair (at most half as many again). The clean pairs go to the paired
gate (harness.gates.gate.paired_gate).
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from harness.bench.cases import LoadSettings, StaticCase
from harness.bench.execute import run_static
from harness.bench.protocol import size_window, static_case_with, stream, wall_clock
from harness.gates.gate import GatePolicy, paired_gate
from harness.gates.verdict import Outcome, Verdict, overall
from harness.load.synthetic import random_samples
from harness.load.tokens import Tokens
from harness.results.case import CaseResult
from harness.runtime.cputime import OutsideCPU
from harness.server.endpoint import Endpoint

SIDES = ("reference", "candidate")
Hold = Callable[[str], AbstractContextManager[None]]  # holds the named side still while the other is measured


def _nothing_held(side: str) -> AbstractContextManager[None]:
    return contextlib.nullcontext()


@dataclass(frozen=True)
class Window:
    """One measurement of one side."""

    side: str
    pair: int
    result: CaseResult
    outside_cores: float


@dataclass
class ABMeasurement:
    """Every window of both sides in the order measured, and which pairs were set aside as disturbed."""

    windows: list[Window]
    requests_per_window: int
    max_outside_cpu: float | None
    set_aside: list[int] = field(default_factory=list)  # pair numbers

    def clean(self, side: str) -> list[CaseResult]:
        return [w.result for w in self.windows if w.side == side and w.pair not in self.set_aside]

    def values(self, side: str, metric: str) -> list[float | None]:
        return [r.metrics.get(metric) for r in self.clean(side)]

    @property
    def pairs(self) -> int:
        return len({w.pair for w in self.windows} - set(self.set_aside))

    @property
    def outside_cores_max(self) -> float:
        return max((w.outside_cores for w in self.windows), default=0.0)


def block_orders(pairs: int, seed: int, name: str) -> list[tuple[str, str]]:
    """The side order of each pair: blocks of two pairs, AB BA or BA AB by a seeded coin."""
    rng = stream(seed, f"ab/{name}/order", "blocks", 0)
    orders: list[tuple[str, str]] = []
    while len(orders) < pairs:
        first = SIDES if rng.random() < 0.5 else SIDES[::-1]
        orders += [first, first[::-1]]
    return orders[:pairs]


def measure_ab(
    endpoints: dict[str, Endpoint],
    tokens: Tokens,
    case: StaticCase,
    settings: LoadSettings,
    pairs: int,
    name: str,
    hold: Hold = _nothing_held,
    max_outside_cpu: float | None = None,
) -> ABMeasurement:
    """`pairs` clean pairs of windows (more when some are disturbed), the other side held by `hold` meanwhile."""

    def run(side: str, repeat: int, count: int) -> tuple[CaseResult, float]:
        rng = stream(settings.seed, f"ab/{name}/{side}", case.id, repeat)
        samples = random_samples(tokens, count, case.prompt_tokens, case.output_tokens, rng)
        other = SIDES[1 - SIDES.index(side)]
        with hold(other), OutsideCPU() as outside:
            result = run_static(
                endpoints[side], tokens, static_case_with(case, len(samples)), settings, samples, "serving.ab"
            )
        return result, outside.cores or 0.0

    def unmeasured(stage: int, count: int) -> float:
        took = 0.0
        for side in SIDES:  # both warmed up and calibrated; the slower side's pace sizes the window of both
            started = wall_clock()
            run(side, stage, count)
            took = max(took, wall_clock() - started)
        return took

    per_window, _ = size_window(unmeasured, case.num_requests, case.parallel, settings)
    attempts = pairs + pairs // 2
    measured = ABMeasurement([], per_window, max_outside_cpu)
    for pair, order in enumerate(block_orders(attempts, settings.seed, name)):
        if measured.pairs >= pairs:
            break
        for side in order:
            result, cores = run(side, pair, per_window)
            measured.windows.append(Window(side, pair, result, cores))
            if max_outside_cpu is not None and cores > max_outside_cpu and pair not in measured.set_aside:
                measured.set_aside.append(pair)
    return measured


def ab_verdicts(measured: ABMeasurement, metrics: Sequence[str], policy: GatePolicy) -> list[Verdict]:
    verdicts = []
    for m in metrics:
        verdict = paired_gate(m, measured.values("reference", m), measured.values("candidate", m), policy)
        if measured.set_aside:
            note = (
                f"; {len(measured.set_aside)} disturbed pair(s) set aside (others kept more than "
                f"{measured.max_outside_cpu:g} cores busy)"
            )
            verdict = dataclasses.replace(verdict, message=verdict.message + note)
        verdicts.append(verdict)
    return verdicts


def ab_summary(measured: ABMeasurement, metric: str) -> dict[str, float | None]:
    """Mean of each side over the clean pairs, for the case document."""
    out: dict[str, float | None] = {}
    for side in SIDES:
        values = [float(v) for v in measured.values(side, metric) if v is not None]
        out[f"{side}/{metric}"] = statistics.fmean(values) if values else None
    return out


def meets_expectation(verdicts: Sequence[Verdict], expect: Outcome | None) -> tuple[bool, str]:
    """Whether the comparison's verdict is what the plan expects (None: anything but a fail)."""
    verdict = overall(verdicts)
    text = "; ".join(v.message for v in verdicts)
    if expect is None:
        return verdict != "fail", f"verdict {verdict}: {text}"
    return verdict == expect, f"verdict {verdict}, expected {expect}: {text}"
