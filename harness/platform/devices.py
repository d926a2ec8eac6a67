"""Device facts for the environment fingerprint: accelerator model and count, driver and CANN versions.

Read from the tools and files the vendors install (npu-smi, /usr/local/Ascend/*, nvidia-smi, /proc/cpuinfo); a
fact that cannot be read is None, never a guess.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from harness.platform.detect import _tool_answers
from harness.platform.npu_smi import parse_info

ASCEND = Path(os.environ.get("ASCEND_HOME_PATH", "/usr/local/Ascend"))


def _key_value(path: Path, key: str) -> str | None:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    match = re.search(rf"^\s*{key}\s*=\s*(\S+)", text, re.M | re.I)
    return match.group(1) if match else None


def cpu_facts(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, Any]:
    """The CPU as a baseline must match it: a virtual machine often names its CPU only "AMD EPYC", so the family,
    model and stepping numbers and the widest vector instruction set are part of its name."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return {"device": None, "device_count": os.cpu_count()}

    def field(name: str) -> str | None:
        match = re.search(rf"^{name}\s*:\s*(.+)$", text, re.M)
        return match.group(1).strip() if match else None

    model = field("model name")
    flags = set((field("flags") or "").split())
    isa = next((name for name in ("amx_tile", "avx512f", "avx2") if name in flags), "no avx2")
    numbers = "/".join(field(n) or "?" for n in ("cpu family", "model", "stepping"))
    device = f"{model} [{numbers}, {isa.removesuffix('_tile').removesuffix('f')}]" if model else None
    return {"device": device, "device_count": os.cpu_count()}


def npu_facts(smi_text: str | None, ascend: Path = ASCEND) -> dict[str, Any]:
    names, count = None, None
    if smi_text:
        chips = parse_info(smi_text).chips
        count = len({c.npu for c in chips}) or None
        names = ", ".join(sorted({c.name for c in chips})) or None
    toolkits = sorted(ascend.glob("ascend-toolkit/latest/*/ascend_toolkit_install.info"))
    return {
        "device": names,
        "device_count": count,
        "driver": _key_value(ascend / "driver" / "version.info", "Version"),
        "cann": _key_value(toolkits[0], "version") if toolkits else None,
    }


def gpu_facts(smi_csv: str | None) -> dict[str, Any]:
    rows = [line.split(",") for line in (smi_csv or "").strip().splitlines() if line.strip()]
    return {
        "device": ", ".join(sorted({r[0].strip() for r in rows})) or None,
        "device_count": len(rows) or None,
        "driver": rows[0][1].strip() if rows and len(rows[0]) > 1 else None,
    }


def device_facts(platform: str | None) -> dict[str, Any]:
    """The facts of this machine's devices for `platform` (None: nothing known)."""
    if platform == "cpu":
        return cpu_facts()
    if platform == "npu":
        ok, text = _tool_answers("npu-smi", "info")
        return npu_facts(text if ok else None)
    if platform == "gpu":
        ok, text = _tool_answers("nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader")
        return gpu_facts(text if ok else None)
    return {}
