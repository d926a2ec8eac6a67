"""Shared integration-test fixtures."""

from __future__ import annotations

import os

import pytest

from harness.paths import cache_root
from harness.runtime.container import docker_problem
from harness.runtime.image import ensure_base_image
from tests.integration.procs import REPO


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
