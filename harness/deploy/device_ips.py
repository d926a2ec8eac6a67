"""Device IPs read on an Ascend node: `hccn_tool -i N -ip -g` prints `ipaddr:192.1.27.6` (and `netmask:...`), as
vllm-ascend's gen_ranktable.py reads it on A2 (910B) nodes; on A3 nodes it reads the virtual NIC's address,
`hccn_tool -i N -vnic -g` (same `ipaddr:` line). The tool is $HCCN_TOOL_PATH, else the driver's, else `hccn_tool`
on PATH."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterable

from harness.errors import HarnessError

DRIVER_TOOL = "/usr/local/Ascend/driver/tools/hccn_tool"
TIMEOUT_S = 30.0
_IPADDR = re.compile(r"^\s*ipaddr\s*:\s*(\S+)", re.MULTILINE)


class DeviceIpError(HarnessError):
    """A device IP could not be read on this node."""


def hccn_tool() -> str:
    configured = os.environ.get("HCCN_TOOL_PATH")
    if configured:
        return configured
    if os.path.exists(DRIVER_TOOL):
        return DRIVER_TOOL
    return shutil.which("hccn_tool") or DRIVER_TOOL


def parse_ip(output: str) -> str | None:
    found = _IPADDR.search(output)
    return found.group(1) if found else None


def read_device_ips(devices: Iterable[int], tool: str | None = None, vnic: bool = False) -> dict[int, str]:
    """Each device's IP from `hccn_tool -i N -ip -g` (`-vnic -g` on A3 nodes, `vnic`); DeviceIpError naming the
    device and the command otherwise."""
    tool = tool or hccn_tool()
    ips = {}
    for device in devices:
        command = [tool, "-i", str(device), "-vnic" if vnic else "-ip", "-g"]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DeviceIpError(f"cannot run `{' '.join(command)}`: {exc}; give device-ips in the plan") from exc
        ip = parse_ip(done.stdout) if done.returncode == 0 else None
        if ip is None:
            said = (done.stdout + done.stderr).strip()[:200]
            raise DeviceIpError(
                f"`{' '.join(command)}` gave no ipaddr (exit {done.returncode}: {said!r}); configure the device's "
                "NIC with hccn_tool or give device-ips in the plan"
            )
        ips[device] = ip
    return ips
