"""The search for the longest max-model-len that serves, as the ModelArts guides' appendix does it by hand.

Pure: each length is tried by a function the caller gives (start a server, benchmark it), so the search is tested
without engines. The guides' method: from `start`, double until a length fails, then bisect between the last
length that served (`fits`) and the first that did not (`refused`) until they are `granularity` apart.

Server starts are the cost (half a minute on a CPU, minutes on a node), and vLLM tells at each start what its KV
cache holds: a started server logs its cache size in tokens, a refusal its own estimate of the longest length that
fits. With `use_reported_capacity` the next length tried is the one those numbers point to (rounded down to the
granularity) and then the length just above it, so the search usually ends in three starts: the first length,
the answer, and the refusal one step above it. Both ends of the final bracket are always real starts, never
predictions: a wrong estimate only costs more steps.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Attempt:
    """One length tried: did it serve, why not, and what vLLM reported about its KV cache."""

    length: int
    fits: bool
    reason: str
    seconds: float = 0.0
    kv_tokens: int | None = None  # the KV cache size a started server logged
    estimated_max_len: int | None = None  # the longest length a refusing server said would fit
    refused_by_engine: bool = False  # refused by vLLM's own KV admission check (its message is the reason)

    def as_json(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Bounds:
    """The search's lengths: the first, the longest, and how close the bracket must close."""

    start: int
    max_length: int
    granularity: int
    use_reported_capacity: bool = True


@dataclass
class Search:
    """The state of one search: the lengths tried and the bracket they make."""

    bounds: Bounds
    attempts: list[Attempt] = field(default_factory=list)
    stopped: str | None = None  # why the search ended before its bracket closed (the deadline)

    @property
    def fits(self) -> int | None:
        """The longest length that served."""
        served = [a.length for a in self.attempts if a.fits]
        return max(served) if served else None

    @property
    def refused(self) -> int | None:
        """The shortest length above `fits` that did not serve."""
        low = self.fits or 0
        failed = [a.length for a in self.attempts if not a.fits and a.length > low]
        return min(failed) if failed else None

    @property
    def hint(self) -> int | None:
        """The longest length vLLM's reports say fits: a refusal's estimate if any, else the last KV cache size."""
        for attempt in reversed(self.attempts):
            if attempt.estimated_max_len is not None:
                return attempt.estimated_max_len
        for attempt in reversed(self.attempts):
            if attempt.kv_tokens is not None:
                return attempt.kv_tokens
        return None

    @property
    def complete(self) -> bool:
        return self.stopped is None and self.next_length() is None

    def next_length(self) -> int | None:
        """The next length to try, or None when the bracket is closed."""
        b, low, high = self.bounds, self.fits, self.refused
        if low is None:
            return None if self.attempts else b.start  # the first length failed: nothing shorter is tried
        if low >= b.max_length or (high is not None and high - low <= b.granularity):
            return None
        top = high if high is not None else b.max_length + 1  # exclusive
        hint = self.hint if b.use_reported_capacity else None
        if hint is not None:
            guess = min(hint // b.granularity * b.granularity, b.max_length)
            if low < guess < top:
                return guess
            if guess <= low and low + b.granularity < top:
                return low + b.granularity  # the reports say `low` is the answer: show the step above fails
        if high is None:
            return min(low * 2, b.max_length)
        middle = (low + high) // 2 // b.granularity * b.granularity
        return middle if low < middle < high else low + b.granularity


def search(
    bounds: Bounds,
    attempt: Callable[[int], Attempt],
    deadline_s: float,
    clock: Callable[[], float] = time.monotonic,
    tried: Callable[[Attempt], None] | None = None,
) -> Search:
    """Run the search, `attempt(length)` per step (`tried` told each one as it ends), until the bracket closes or
    `deadline_s` passes (then `stopped` says so, and the bracket so far is the answer)."""
    state = Search(bounds)
    ends = clock() + deadline_s
    while (length := state.next_length()) is not None:
        if clock() >= ends:
            state.stopped = f"the probe's deadline ({deadline_s:.0f} s) passed before max-model-len {length} was tried"
            break
        result = attempt(length)
        state.attempts.append(result)
        if tried is not None:
            tried(result)
    return state
