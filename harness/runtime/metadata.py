"""Keeping the harness's containers away from the cloud metadata address (169.254.169.254 by default).

On a shared node a container must not read the instance's credentials from the metadata service. The containers
the harness starts use host networking (the harness reaches the server on 127.0.0.1, as vllm-ascend's docs run
it), so their packets leave through the host's OUTPUT chain, not through FORWARD / DOCKER-USER where a rule for
bridged containers would go, and a plain OUTPUT rule would cut off the host as well. The block therefore matches
the container's cgroup with iptables' `cgroup` match, in one of two ways, whichever the host offers:

- `--path <cgroup>`: the container's cgroup v2 path (`0::/…` in /proc/PID/cgroup). Hosts on cgroup v2, and hybrid
  hosts (cgroup v1 controllers with the unified hierarchy also mounted, as here) where docker places the container
  in the unified hierarchy too.
- `--cgroup <classid>`: on a host with cgroup v1 only, the net_cls controller's class id. The harness writes a
  class id of its own into the container's `net_cls.classid` (the net_cls hierarchy must be mounted at
  /sys/fs/cgroup/net_cls before dockerd starts the container, as systemd does on v1 hosts).

Where neither exists the container is refused with the fix. After the rule is in, `verify` connects from inside
the container to the address: only a prompt "connection refused" (the rule's REJECT, answered on this host) is
accepted. The rule is removed with the container. For bridged containers (not what the harness starts) the usual
rule is `iptables -I DOCKER-USER -d 169.254.169.254 -j REJECT`.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError

METADATA_ADDRESS = "169.254.169.254"
PROBE_PORT = 80  # the metadata service's port; the rule refuses every port of the address
PROC = Path("/proc")
NET_CLS_ROOT = Path("/sys/fs/cgroup/net_cls")
CLASSID_MAJOR = 0x11A7  # the class ids the harness writes: 0x11a7NNNN
IPTABLES_TIMEOUT_S = 30.0
PROBE_TIMEOUT_S = 10.0
COMMENT = "llmqual: no metadata for this container"
NO_BLOCK = "or set container.block-metadata: false in the plan if the node is not shared"
log = logging.getLogger(__name__)


class MetadataBlockError(HarnessError):
    """The metadata address could not be blocked for a container."""


@dataclass(frozen=True)
class CgroupMatch:
    """How iptables recognises the container's sockets: `match` is the rule's `-m cgroup` part; `classid_file` is
    where the class id must be written first (cgroup v1 only)."""

    match: tuple[str, ...]
    classid_file: Path | None = None

    @property
    def mechanism(self) -> str:
        return "net_cls class id" if self.classid_file else "cgroup v2 path"


def choose_match(cgroup_text: str, classid: int, net_cls_root: Path = NET_CLS_ROOT) -> CgroupMatch:
    """The cgroup match for a process whose /proc/PID/cgroup reads `cgroup_text`: its cgroup v2 path when it has
    one of its own, else its net_cls cgroup with `classid`. Pure but for looking at `net_cls_root`."""
    unified, net_cls = "", ""
    for line in cgroup_text.splitlines():
        number, controllers, path = [*line.split(":", 2), "", ""][:3]
        if number == "0" and controllers == "":
            unified = path
        elif "net_cls" in controllers.split(","):
            net_cls = path
    if unified not in ("", "/"):
        return CgroupMatch(("-m", "cgroup", "--path", unified.lstrip("/")))
    classid_file = net_cls_root / net_cls.lstrip("/") / "net_cls.classid"
    if net_cls not in ("", "/") and classid_file.exists():
        return CgroupMatch(("-m", "cgroup", "--cgroup", f"{classid:#010x}"), classid_file)
    raise MetadataBlockError(
        "the container has neither a cgroup v2 path nor a net_cls cgroup of its own, so no iptables rule can "
        "single it out: on a cgroup v1 host mount the net_cls controller before docker starts (mkdir -p "
        f"{net_cls_root} && mount -t cgroup -o net_cls net_cls {net_cls_root}, then restart docker), or boot the "
        f"node with the unified hierarchy (systemd.unified_cgroup_hierarchy=1), {NO_BLOCK}"
    )


def rule(action: str, address: str, match: Sequence[str]) -> list[str]:
    """The iptables command that inserts (`-I`) or deletes (`-D`) the block of `address` for one cgroup. Pure."""
    return [
        "iptables", "-w", action, "OUTPUT", "-d", address, *match, "-j", "REJECT", "-m", "comment", "--comment",
        COMMENT,
    ]  # fmt: skip


def _iptables(argv: Sequence[str]) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=IPTABLES_TIMEOUT_S, check=False)
    except FileNotFoundError as exc:
        raise MetadataBlockError(
            f"iptables is not installed: it is needed to keep the container from the metadata address "
            f"(install iptables, {NO_BLOCK})"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise MetadataBlockError(f"iptables did not answer within {IPTABLES_TIMEOUT_S:.0f} s") from exc
    if done.returncode != 0:
        raise MetadataBlockError(
            f"{' '.join(argv[:4])} failed: {done.stderr.strip()[-500:]} (run the harness as root, {NO_BLOCK})"
        )


def block_problem() -> str | None:
    """Why no block can be added here (not root, no iptables), or None: for checks before anything starts."""
    if os.geteuid() != 0:
        return f"the metadata block needs root to add its iptables rule (run as root, {NO_BLOCK})"
    if shutil.which("iptables") is None:
        return f"the metadata block needs iptables (install Debian's iptables, {NO_BLOCK})"
    return None


def probe_argv(address: str, port: int = PROBE_PORT) -> list[str]:
    """A TCP connect to `address:port` from inside a container, with bash alone (in every vLLM image). Pure."""
    return ["timeout", f"{PROBE_TIMEOUT_S:.0f}", "bash", "-c", f"exec 3<>/dev/tcp/{address}/{port}"]


def probe_verdict(returncode: int, stderr: str, address: str) -> str | None:
    """What a probe's outcome says: None when the rule refused it, else why the block is not proven. Pure."""
    if returncode != 0 and "Connection refused" in stderr:
        return None
    if returncode == 0:
        return f"a connection from inside the container to {address} succeeded: the block did not hold"
    if returncode == 124:
        return f"a connection from inside the container to {address} was not refused within {PROBE_TIMEOUT_S:.0f} s"
    return f"the probe from inside the container could not run (exit {returncode}: {stderr.strip()[-300:]})"


class MetadataBlock:
    """The block of `address` for one container's process `pid`, added on enter and removed on exit. `mechanism`
    forces "path" or "classid" (tests of each on a host that offers both)."""

    def __init__(self, pid: int, address: str = METADATA_ADDRESS, mechanism: str | None = None) -> None:
        try:
            text = (PROC / str(pid) / "cgroup").read_text()
        except OSError as exc:
            raise MetadataBlockError(f"cannot read the cgroup of the container's process {pid}: {exc}") from exc
        classid = (CLASSID_MAJOR << 16) | (secrets.randbelow(0xFFFF) + 1)
        if mechanism == "classid":  # hide the v2 path, as on a cgroup v1 host
            text = "\n".join(line for line in text.splitlines() if not line.startswith("0::"))
        self.address = address
        self.cgroup = choose_match(text, classid)
        if mechanism == "path" and self.cgroup.classid_file is not None:
            raise MetadataBlockError(f"process {pid} has no cgroup v2 path of its own")

    def __enter__(self) -> MetadataBlock:
        if self.cgroup.classid_file is not None:
            try:
                self.cgroup.classid_file.write_text(self.cgroup.match[-1])
            except OSError as exc:
                raise MetadataBlockError(
                    f"cannot write {self.cgroup.classid_file}: {exc} (run the harness as root, {NO_BLOCK})"
                ) from exc
        _iptables(rule("-I", self.address, self.cgroup.match))
        return self

    def verify(self, run_inside: Callable[[list[str]], subprocess.CompletedProcess[str]]) -> None:
        """Connect from inside the container (`run_inside` runs an argv there) and require the rule's refusal."""
        done = run_inside(probe_argv(self.address))
        problem = probe_verdict(done.returncode, done.stderr, self.address)
        if problem is None:
            log.info("the container's connections to %s are refused (%s)", self.address, self.cgroup.mechanism)
            return
        if done.returncode == 0 or done.returncode == 124:
            raise MetadataBlockError(
                f"{problem}: check `iptables -S OUTPUT` for the llmqual rule ({self.cgroup.mechanism}), {NO_BLOCK}"
            )
        log.warning("the metadata block is in but unverified: %s", problem)

    def __exit__(self, *exc_info: object) -> None:
        _iptables(rule("-D", self.address, self.cgroup.match))
