"""Real containers in tests: the harness's CPU base image on this machine's Docker daemon (scripts/docker-up)."""

from __future__ import annotations

import subprocess


def labelled_containers() -> list[str]:
    """Every container of the harness on this daemon, running or not (names)."""
    done = subprocess.run(
        ["docker", "ps", "--all", "--filter", "label=llmqual", "--format", "{{.Names}}"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout.split()
