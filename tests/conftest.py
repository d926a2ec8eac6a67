"""The test line prints its slowest tests: CI keeps the line under 60 minutes, and its log is where a slow one
is found (an explicit `--durations` wins)."""

from __future__ import annotations

import pytest

SLOWEST_SHOWN = 30


def pytest_configure(config: pytest.Config) -> None:
    if config.option.durations is None:
        config.option.durations = SLOWEST_SHOWN
