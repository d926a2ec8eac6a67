"""Arrival schedules: rates, burstiness, the infinite rate, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.load.schedule import arrival_offsets, realised_rate


def test_poisson_schedule_has_the_asked_rate_and_exponential_gaps() -> None:
    offsets = arrival_offsets(20_001, 4.0, 1.0, np.random.default_rng(1))
    gaps = np.diff(offsets)
    assert offsets[0] == 0.0
    assert np.all(gaps >= 0)
    assert realised_rate(offsets) == pytest.approx(4.0, rel=0.03)
    assert np.std(gaps) / np.mean(gaps) == pytest.approx(1.0, rel=0.05), "exponential gaps: CV 1"


@pytest.mark.parametrize(("burstiness", "cv"), [(0.25, 2.0), (4.0, 0.5)])
def test_burstiness_changes_spread_not_rate(burstiness: float, cv: float) -> None:
    offsets = arrival_offsets(20_001, 10.0, burstiness, np.random.default_rng(2))
    gaps = np.diff(offsets)
    assert realised_rate(offsets) == pytest.approx(10.0, rel=0.05)
    assert np.std(gaps) / np.mean(gaps) == pytest.approx(cv, rel=0.08), "gamma gaps: CV = 1/sqrt(shape)"


def test_infinite_rate_sends_everything_at_once() -> None:
    assert arrival_offsets(5, math.inf, 1.0, np.random.default_rng(0)) == [0.0] * 5


def test_same_seed_same_schedule() -> None:
    a = arrival_offsets(50, 2.0, 1.0, np.random.default_rng(7))
    assert a == arrival_offsets(50, 2.0, 1.0, np.random.default_rng(7))
    assert a != arrival_offsets(50, 2.0, 1.0, np.random.default_rng(8))


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1.0), (-1.0, 1.0), (math.nan, 1.0), (1.0, 0.0)])
def test_bad_rates_are_refused(rate: float, burst: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        arrival_offsets(3, rate, burst, np.random.default_rng(0))
