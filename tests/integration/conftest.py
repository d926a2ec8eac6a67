"""Shared integration-test fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from harness.paths import cache_root
from harness.runtime.container import docker_problem
from harness.runtime.image import ensure_base_image
from tests.integration.procs import REPO
from tests.integration.servers import Served, Shared


@pytest.fixture(scope="session")
def base_image() -> str:
    """The CPU base image (built once per daemon). A machine of this kind has Docker (scripts/docker-up): without
    a daemon these tests fail, unless the user opted out with LLMQUAL_NO_DOCKER=1."""
    problem = docker_problem()
    if problem is not None:
        if os.environ.get("LLMQUAL_NO_DOCKER") == "1":
            pytest.skip(f"LLMQUAL_NO_DOCKER=1 and {problem}")
        pytest.fail(problem)
    return ensure_base_image(cache_root(REPO))


@pytest.fixture(scope="package")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    """The tiny-model server of the modules that only need one (accuracy against lm-eval, the benchmark CLI)."""
    shared = Shared(tmp_path_factory.mktemp("shared-server"))
    try:
        yield shared
    finally:
        shared.close()


@pytest.fixture(scope="module")
def served(shared_server: Shared) -> Iterator[Served]:
    """The shared server, running for this module's tests and held stopped after them."""
    with shared_server.running() as server:
        yield server
