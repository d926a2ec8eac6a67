"""What the preflight suite reads from an Ascend node, each reading under a deadline: `npu-smi info` parsed, and
whether docker's daemon answers. A reading that cannot be taken is a PreflightError saying what to do; judging the
readings is harness.platform.preflight's (pure functions)."""

from __future__ import annotations

import shutil
import subprocess

from harness.errors import HarnessError
from harness.platform.npu_smi import NpuSmiInfo, parse_info


class PreflightError(HarnessError):
    """A reading of the node could not be taken (a tool missing, hung or failing)."""


def read_npu_smi(timeout_s: float) -> NpuSmiInfo:
    """`npu-smi info`, parsed."""
    try:
        done = subprocess.run(["npu-smi", "info"], capture_output=True, text=True, timeout=timeout_s, check=False)
    except FileNotFoundError as exc:
        raise PreflightError("npu-smi is not on PATH: install the Ascend driver package (it ships npu-smi)") from exc
    except subprocess.TimeoutExpired as exc:
        raise PreflightError(
            f"npu-smi info did not answer within {timeout_s:.0f} s: the driver is hung; reboot the node"
        ) from exc
    if done.returncode != 0:
        raise PreflightError(f"npu-smi info failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return parse_info(done.stdout)


def docker_problems(timeout_s: float = 60.0) -> list[str]:
    """Why docker cannot start the plan's containers (not installed, daemon not answering), or nothing."""
    if shutil.which("docker") is None:
        return ["docker is not on PATH: install docker (the plan runs its server in a container)"]
    try:
        done = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        return [f"the docker daemon did not answer within {timeout_s:.0f} s (restart it: systemctl restart docker)"]
    if done.returncode != 0:
        return [f"the docker daemon does not answer: {done.stderr.strip()[-300:]} (start it: systemctl start docker)"]
    return []
