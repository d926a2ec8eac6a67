"""HCCL rank table v1.0 (`server_list`) from a deployment: every value a string, ranks numbered node by node in
instance order, devices in the order the plan lists them."""

from __future__ import annotations

from typing import Any

from harness.config.deployment import DeploymentSpec


def rank_table(spec: DeploymentSpec) -> dict[str, Any]:
    """The rank table document for `spec`. Pure."""
    rank = 0
    servers = []
    for node in spec.nodes:
        devices = []
        for instance in node.instances:
            for device in instance.devices:
                devices.append({"device_id": str(device), "device_ip": node.device_ips[device], "rank_id": str(rank)})
                rank += 1
        servers.append({"server_id": node.server_id, "device": devices, "host_nic_ip": "reserve"})
    return {"version": "1.0", "server_count": str(len(servers)), "server_list": servers, "status": "completed"}


def check_rank_table(table: dict[str, Any]) -> list[str]:
    """Problems of a rank table document (empty when valid): version, string values, contiguous unique ranks."""
    problems = []
    if table.get("version") != "1.0":
        problems.append(f"version is {table.get('version')!r}, expected '1.0'")
    servers = table.get("server_list") or []
    if table.get("server_count") != str(len(servers)):
        problems.append(f"server_count {table.get('server_count')!r} does not match {len(servers)} servers")
    ranks = []
    for server in servers:
        for device in server.get("device") or []:
            for key in ("device_id", "device_ip", "rank_id"):
                if not isinstance(device.get(key), str):
                    problems.append(f"{server.get('server_id')}: {key} of {device} is not a string")
            if isinstance(device.get("rank_id"), str) and device["rank_id"].isdigit():
                ranks.append(int(device["rank_id"]))
    if sorted(ranks) != list(range(len(ranks))):
        problems.append(f"rank ids {sorted(ranks)} are not 0..{len(ranks) - 1} without gaps or repeats")
    return problems
