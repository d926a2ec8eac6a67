"""Keeping the harness's containers away from the cloud metadata address (169.254.169.254).

On a shared node a container must not read the instance's credentials from the metadata service. The containers
the harness starts use host networking (the harness reaches the server on 127.0.0.1, as vllm-ascend's docs run
it), so their packets leave through the host's OUTPUT chain, not through FORWARD / DOCKER-USER where a rule for
bridged containers would go, and a plain OUTPUT rule would cut off the host as well. The block therefore matches
the container's cgroup (iptables' `cgroup --path`, cgroup v2): only that container is refused, and the rule is
removed with the container. For bridged containers (not what the harness starts) the usual rule is
`iptables -I DOCKER-USER -d 169.254.169.254 -j REJECT`.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from harness.errors import HarnessError

METADATA_ADDRESS = "169.254.169.254"
PROC = Path("/proc")
IPTABLES_TIMEOUT_S = 30.0


class MetadataBlockError(HarnessError):
    """The metadata address could not be blocked for a container."""


def cgroup_path(pid: int) -> str:
    """The cgroup v2 path of a process (`system.slice/docker-<id>.scope`), without the leading slash."""
    try:
        lines = (PROC / str(pid) / "cgroup").read_text().splitlines()
    except OSError as exc:
        raise MetadataBlockError(f"cannot read the cgroup of the container's process {pid}: {exc}") from exc
    unified = [line[3:] for line in lines if line.startswith("0::")]
    if not unified or unified[0] in ("", "/"):
        raise MetadataBlockError(
            f"process {pid} has no cgroup v2 path of its own (cgroup v1 host?); block {METADATA_ADDRESS} for the "
            "node by hand, or set container.block-metadata: false in the plan if the node is not shared"
        )
    return unified[0].lstrip("/")


def rule(action: str, cgroup: str) -> list[str]:
    """The iptables command that inserts (`-I`) or deletes (`-D`) the block for one cgroup. Pure."""
    return [
        "iptables", "-w", action, "OUTPUT", "-d", METADATA_ADDRESS, "-m", "cgroup", "--path", cgroup,
        "-j", "REJECT", "-m", "comment", "--comment", "llmqual: no metadata for this container",
    ]  # fmt: skip


def _iptables(argv: Sequence[str]) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=IPTABLES_TIMEOUT_S, check=False)
    except FileNotFoundError as exc:
        raise MetadataBlockError(
            "iptables is not installed: it is needed to keep the container from the metadata address "
            "(install iptables, or set container.block-metadata: false in the plan if the node is not shared)"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise MetadataBlockError(f"iptables did not answer within {IPTABLES_TIMEOUT_S:.0f} s") from exc
    if done.returncode != 0:
        raise MetadataBlockError(
            f"{' '.join(argv[:4])} failed: {done.stderr.strip()[-500:]} (run the harness as root, or set "
            "container.block-metadata: false in the plan if the node is not shared)"
        )


class MetadataBlock:
    """The block for one container's cgroup, added on enter and removed on exit."""

    def __init__(self, pid: int) -> None:
        self.cgroup = cgroup_path(pid)

    def __enter__(self) -> MetadataBlock:
        _iptables(rule("-I", self.cgroup))
        return self

    def __exit__(self, *exc_info: object) -> None:
        _iptables(rule("-D", self.cgroup))
