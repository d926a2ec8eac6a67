"""The SLO rate search: verdicts with confidence, the bracket and bisection, the plan section (no engines)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.capacity.rate_search import RateBounds, RateStep, search_rate
from harness.capacity.sla import GOODPUT_RATIO, judge
from harness.config.sla import SLASpec
from harness.gates.slo import objective_verdict


def test_an_objective_holds_only_when_its_pessimistic_bound_does() -> None:
    assert objective_verdict("p99_ttft_ms", 100, [80, 82, 81], 0.95).outcome == "holds"
    assert objective_verdict("p99_ttft_ms", 100, [120, 118, 125], 0.95).outcome == "violated"
    # A mean under the bound with a spread that reaches over it: not signed off.
    uncertain = objective_verdict("p99_ttft_ms", 100, [60, 95, 130], 0.95)
    assert uncertain.outcome == "uncertain"
    assert uncertain.mean is not None
    assert uncertain.mean < 100
    assert objective_verdict("p99_ttft_ms", 100, [80, None, 81], 0.95).outcome == "uncertain"
    assert objective_verdict("p99_ttft_ms", 100, [80], 0.95).outcome == "uncertain"
    # At least (goodput): the mirror image.
    assert objective_verdict(GOODPUT_RATIO, 0.95, [0.99, 0.98, 0.99], 0.95, at_most=False).outcome == "holds"
    assert objective_verdict(GOODPUT_RATIO, 0.95, [0.5, 0.6, 0.55], 0.95, at_most=False).outcome == "violated"


class Server:
    """A server whose p99 TTFT is flat up to `knee` req/s and grows fast beyond (queueing), with noise."""

    def __init__(self, knee: float, seed: int = 0) -> None:
        self.knee, self.rng, self.rates = knee, np.random.default_rng(seed), []  # type: ignore[var-annotated]
        self.spec = SLASpec.model_validate({"objectives": {"p99_ttft_ms": 300}, "rate-low": 2, "precision": 0.1})

    def ttft(self, rate: float) -> float:
        return 100.0 if rate <= self.knee else 100.0 * math.exp(3 * (rate / self.knee - 1)) + 200

    def __call__(self, rate: float) -> RateStep:
        self.rates.append(rate)
        repeats = [{"p99_ttft_ms": self.ttft(rate) * (1 + 0.03 * self.rng.standard_normal())} for _ in range(3)]
        return RateStep(rate, judge(self.spec, repeats))


@pytest.mark.parametrize("knee", [5.0, 37.0, 100.0])
def test_the_search_brackets_then_bisects_to_the_knee(knee: float) -> None:
    server = Server(knee)
    found = search_rate(RateBounds(2, 256, 0.1, 16), server, lambda step: None)
    assert found.stopped is None
    assert found.monotonic
    assert found.knee is not None
    assert found.above is not None
    assert found.knee <= knee < found.above  # the interval holds the true knee
    assert found.above / found.knee - 1 <= 0.1
    assert server.rates[:2] == [2, 4]  # doubling first


def test_the_search_says_when_the_lowest_rate_already_fails_or_the_highest_holds() -> None:
    low = search_rate(RateBounds(2, 256, 0.1, 16), Server(1.0), lambda step: None)
    assert low.knee is None
    assert [s.rate for s in low.steps] == [2]
    high = search_rate(RateBounds(2, 64, 0.1, 16), Server(1000.0), lambda step: None)
    assert high.knee == 64
    assert high.above is None
    short = search_rate(RateBounds(2, 256, 0.01, 4), Server(37.0), lambda step: None)
    assert short.stopped is not None
    assert "max-steps" in short.stopped


def test_an_invalid_step_is_not_sustainable() -> None:
    spec = SLASpec.model_validate({"objectives": {"p99_ttft_ms": 300}})
    step = RateStep(8, judge(spec, [{"p99_ttft_ms": 10}] * 3), invalid="the client fell behind")
    assert not step.sustainable
    assert "not a valid measurement" in step.reason


def test_goodput_is_judged_per_repeat_as_a_ratio() -> None:
    spec = SLASpec.model_validate({"goodput": {"min-ratio": 0.9, "ttft-ms": 200}})
    repeats = [{"request_goodput": 9.8, "request_throughput": 10.0}] * 3
    (verdict,) = judge(spec, repeats)
    assert verdict.metric == GOODPUT_RATIO
    assert verdict.outcome == "holds"
    assert verdict.mean == pytest.approx(0.98)
    spread = [{"request_goodput": g, "request_throughput": 10.0} for g in (9.8, 8.0, 9.9)]
    assert judge(spec, spread)[0].outcome == "uncertain"
    assert judge(spec, [{"request_goodput": None, "request_throughput": 10.0}] * 3)[0].outcome == "uncertain"


@pytest.mark.parametrize(
    ("section", "fragment"),
    [
        ({"objectives": {"p99_ttft": 300}}, "did you mean 'p99_ttft_ms'"),
        ({"objectives": {"p99-ttft-ms": -1}}, "positive number of milliseconds"),
        ({"objectives": {"mean_tpot_ms": 50}, "rate-low": 16, "rate-high": 8}, "must increase"),
        ({}, "give objectives"),
        ({"goodput": {"min-ratio": 0.95}}, "at least one per-request bound"),
    ],
)
def test_bad_sla_sections_are_refused(section: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        SLASpec.model_validate(section)
    assert SLASpec.model_validate({"objectives": {"p99-ttft-ms": 2000}}).objectives == {"p99_ttft_ms": 2000}
