"""The checks an engineer makes by hand before a run on an Ascend node, as pure functions.

Each takes what was read from the node (parsed `npu-smi`, a sysctl value, paths, interface names) and returns the
problems found, each saying what to do. The preflight suite gathers the readings and asserts there are none.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from harness.config.plan import Plan
from harness.platform.npu_smi import NpuSmiInfo

NIC_VARIABLES = ("HCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME", "TP_SOCKET_IFNAME")


def planned_devices(plan: Plan) -> list[int]:
    """The cards the plan will use on this node: its deployment's node 0 instances', its server's devices, or the
    first tensor x pipeline ones."""
    if plan.deployment is not None:
        return sorted({d for node in plan.deployment.nodes[:1] for i in node.instances for d in i.devices})
    if plan.server.devices:
        return list(plan.server.devices)
    return list(range(plan.server.tensor_parallel_size * plan.server.pipeline_parallel_size))


def unhealthy_chips(info: NpuSmiInfo) -> list[str]:
    return [
        f"NPU {c.npu} chip {c.chip} ({c.name}) reports health {c.health}: inspect `npu-smi info -t health -i {c.npu}`"
        f" and reset the card (`npu-smi set -t reset -i {c.npu} -c {c.chip}`) or leave it out of the plan's devices"
        for c in info.chips
        if c.health != "OK"
    ]


def card_count(info: NpuSmiInfo, expected: int) -> list[str]:
    found = len({c.npu for c in info.chips})
    if found == expected:
        return []
    return [
        f"npu-smi lists {found} NPUs, the plan expects {expected}: check the driver (`npu-smi info -l`), that every "
        "card is seated and powered, and that no card was taken by a container"
    ]


def foreign_processes(info: NpuSmiInfo, devices: Sequence[int]) -> list[str]:
    return [
        f"NPU {p.npu} chip {p.chip} runs pid {p.pid} ({p.name or 'no name'}, {p.memory_mb} MB): stop it "
        f"(`kill {p.pid}`, or the container that owns it) or use other devices"
        for p in info.processes
        if p.npu in devices
    ]


def short_of_hbm(info: NpuSmiInfo, devices: Sequence[int], min_free_mb: float) -> list[str]:
    problems = []
    for c in info.chips:
        if c.npu not in devices:
            continue
        if c.hbm_used_mb is None or c.hbm_total_mb is None:
            problems.append(f"NPU {c.npu} chip {c.chip}: npu-smi shows no HBM reading; cannot check free memory")
        elif c.hbm_total_mb - c.hbm_used_mb < min_free_mb:
            free = c.hbm_total_mb - c.hbm_used_mb
            problems.append(
                f"NPU {c.npu} chip {c.chip} has {free:.0f} MB HBM free, the plan needs {min_free_mb:.0f} MB: free it "
                "or lower gpu-memory-utilization / max-model-len"
            )
    return problems


def ip_forwarding(value: str) -> list[str]:
    if value.strip() == "1":
        return []
    return [
        f"net.ipv4.ip_forward is {value.strip() or 'unreadable'}: containers with published ports and multi-node "
        "HCCL need it; `sysctl -w net.ipv4.ip_forward=1` (and persist it in /etc/sysctl.conf)"
    ]


def missing_paths(paths: Iterable[str], exists: Mapping[str, bool]) -> list[str]:
    return [
        f"{path} does not exist: the container mounts it from the host; install the Ascend driver and npu-smi "
        "(or fix the install path)"
        for path in paths
        if not exists.get(path, False)
    ]


def missing_nics(environment: Mapping[str, str], interfaces: Iterable[str]) -> list[str]:
    """Interfaces named by HCCL_SOCKET_IFNAME / GLOO_SOCKET_IFNAME / TP_SOCKET_IFNAME that this node lacks.

    Values are comma lists; a leading `=` asks for an exact name, `^=` excludes names, otherwise a name is a prefix
    (HCCL's convention).
    """
    present = list(interfaces)
    problems = []
    for variable in NIC_VARIABLES:
        value = environment.get(variable, "").strip()
        if not value or value.startswith("^="):
            continue
        exact = value.startswith("=")
        for name in value.lstrip("=").split(","):
            name = name.strip()
            found = name in present if exact else any(i.startswith(name) for i in present)
            if name and not found:
                problems.append(
                    f"{variable}={value}: no interface {'named' if exact else 'starting with'} {name!r} here "
                    f"(interfaces: {', '.join(sorted(present))}); set it to the NIC of the cluster network"
                )
    return problems
