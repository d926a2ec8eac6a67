"""Per-session values the plugin modules share through pytest's config stash."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from harness.config.plans import Plans
from harness.load.tokens import Tokens
from harness.results.index import RunIndex
from harness.results.sink import CaseSink
from harness.run import Run
from harness.server.pool import ServerPool

RUN_KEY = pytest.StashKey[Run]()
PLANS_KEY = pytest.StashKey[Plans]()
POOL_KEY = pytest.StashKey[ServerPool]()
SINK_KEY = pytest.StashKey[CaseSink]()
TOKENS_KEY = pytest.StashKey[dict[Path, Tokens]]()
INDEX_KEY = pytest.StashKey[RunIndex]()
PROGRESS_KEY = pytest.StashKey[Callable[[str, int, int], None]]()
