"""When each request of an open-loop run is due: Poisson arrivals, or gamma arrivals with a burstiness factor.

Pure: the random generator is a parameter. Inter-arrival times are drawn from a gamma distribution with shape
`burstiness` and mean 1/rate (shape 1 is a Poisson process; below 1 burstier, above 1 more regular), as
`vllm bench serve` does. The first request is due at 0. An infinite rate makes every request due at once.
"""

from __future__ import annotations

import math

import numpy as np


def arrival_offsets(count: int, rate: float, burstiness: float, rng: np.random.Generator) -> list[float]:
    """Offsets in seconds from the start of the run at which each of `count` requests is due."""
    if count < 0:
        raise ValueError("count must be non-negative")
    if not rate > 0:
        raise ValueError(f"request rate must be positive (or inf), got {rate}")
    if not burstiness > 0:
        raise ValueError(f"burstiness must be positive, got {burstiness}")
    if math.isinf(rate) or count == 0:
        return [0.0] * count
    gaps = rng.gamma(shape=burstiness, scale=1.0 / (rate * burstiness), size=count - 1)
    return [0.0, *np.cumsum(gaps).tolist()]


def realised_rate(offsets: list[float]) -> float | None:
    """The rate a schedule actually asks for: (n - 1) / span; None when it cannot be defined."""
    if len(offsets) < 2 or offsets[-1] <= offsets[0]:
        return None
    return (len(offsets) - 1) / (offsets[-1] - offsets[0])
