"""Rank tables from a plan's deployment, and checks of rank-table files. Pure.

Two documents share the name:

- **v1.2, prefill/decode** (`pd_rank_table`): what vllm-ascend's `LLMDataDistCMgrConnector` reads from
  DISAGGREGATED_PREFILL_RANK_TABLE_PATH (checked against vllm-ascend 0.11.0: `examples/disaggregated_prefill_v1/
  gen_ranktable.py` writes it, `vllm_ascend/distributed/llmdatadist_c_mgr_connector.py` reads it):

      {"version": "1.2", "server_count": "1",
       "prefill_device_list": [{"server_id": "10.0.0.1", "device_id": "0", "device_ip": "192.1.27.6",
                                "cluster_id": "1"}, ...],
       "decode_device_list": [...], "status": "completed"}

  Every value is a string. `cluster_id` numbers the devices 1, 2, ... across both lists (the connector uses it as a
  device's identity); on A3 nodes each device also has `super_pod_id` and `super_device_id`. A worker finds its
  entry by its host IP (`server_id`), its role's list and its tensor-parallel rank among the node's visible
  devices. Mixed instances are not in it.
- **v1.0, HCCL** (`hccl_rank_table`): `server_list` of servers with `device` lists and contiguous `rank_id`s, as
  HCCL's collective communication (multi-node training) reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.config.deployment import DeploymentSpec

PD_VERSION = "1.2"
ROLE_LISTS = {"prefill": "prefill_device_list", "decode": "decode_device_list"}
PD_KEYS = ("server_id", "device_id", "device_ip", "cluster_id")
A3_KEYS = ("super_pod_id", "super_device_id")

DeviceIps = Mapping[str, Mapping[int, str]]  # server id -> device -> IP, for devices the plan gives no IP


def _ip(spec: DeploymentSpec, node: int, device: int, read: DeviceIps | None) -> str:
    entry = spec.nodes[node]
    if device in entry.device_ips:
        return entry.device_ips[device]
    if read is not None and device in read.get(entry.server_id, {}):
        return read[entry.server_id][device]
    raise KeyError(f"deployment.nodes.{node}: device {device} has no IP (device-ips, or read it on the node)")


def pd_rank_table(spec: DeploymentSpec, read_ips: DeviceIps | None = None) -> dict[str, Any]:
    """The v1.2 table of a prefill/decode deployment: prefill devices first, then decode, each in plan order."""
    lists: dict[str, list[dict[str, str]]] = {name: [] for name in ROLE_LISTS.values()}
    cluster = 0
    for role, name in ROLE_LISTS.items():
        for index, node in enumerate(spec.nodes):
            for instance in (i for i in node.instances if i.role == role):
                for device in instance.devices:
                    cluster += 1
                    entry = {
                        "server_id": node.server_id,
                        "device_id": str(device),
                        "device_ip": _ip(spec, index, device, read_ips),
                        "cluster_id": str(cluster),
                    }
                    if node.super_pod_id is not None:
                        entry["super_pod_id"] = node.super_pod_id
                        entry["super_device_id"] = node.super_device_ids[device]
                    lists[name].append(entry)
    return {"version": PD_VERSION, "server_count": str(len(spec.nodes)), **lists, "status": "completed"}


def check_pd_rank_table(table: Any) -> list[str]:
    """Problems of a v1.2 document (empty when valid): version, status, both lists non-empty, every value a string,
    the keys vllm-ascend reads present, no device twice, cluster ids distinct positive integers, server_count the
    number of servers, A3 keys on all devices or none."""
    if not isinstance(table, dict):
        return [f"the document is a {type(table).__name__}, not a JSON object"]
    problems = []
    if table.get("version") != PD_VERSION:
        problems.append(f"version is {table.get('version')!r}, expected '1.2' (a v1.0 HCCL table is not read by P/D)")
    if table.get("status") != "completed":
        problems.append(f"status is {table.get('status')!r}, expected 'completed'")
    devices: list[tuple[str, dict[str, Any]]] = []
    for name in ROLE_LISTS.values():
        entries = table.get(name)
        if not isinstance(entries, list) or not entries:
            problems.append(f"{name} is missing or empty")
            continue
        devices += [(f"{name}[{i}]", entry if isinstance(entry, dict) else {}) for i, entry in enumerate(entries)]
    seen_devices: dict[tuple[Any, Any], str] = {}
    seen_clusters: dict[Any, str] = {}
    with_a3 = 0
    for where, entry in devices:
        for key in PD_KEYS:
            if key not in entry:
                problems.append(f"{where} has no {key}")
        for key, value in entry.items():
            if not isinstance(value, str):
                problems.append(f"{where}.{key} is {value!r}, not a string")
        device = (entry.get("server_id"), entry.get("device_id"))
        if device in seen_devices:
            problems.append(f"{where} is device {device[1]} of {device[0]} again (also {seen_devices[device]})")
        seen_devices[device] = where
        cluster = entry.get("cluster_id")
        if not (isinstance(cluster, str) and cluster.isdigit() and int(cluster) > 0):
            problems.append(f"{where}.cluster_id {cluster!r} is not a positive integer")
        elif cluster in seen_clusters:
            problems.append(f"{where}.cluster_id {cluster} repeats {seen_clusters[cluster]}'s")
        seen_clusters[cluster] = where
        with_a3 += all(key in entry for key in A3_KEYS)
    if 0 < with_a3 < len(devices):
        problems.append(f"{with_a3} of {len(devices)} devices have super_pod_id/super_device_id: all or none (A3)")
    servers = {server for server, _ in seen_devices}
    if table.get("server_count") != str(len(servers)):
        problems.append(f"server_count {table.get('server_count')!r} does not match {len(servers)} servers")
    return problems


def hccl_rank_table(spec: DeploymentSpec, read_ips: DeviceIps | None = None) -> dict[str, Any]:
    """The v1.0 HCCL table: every device of every node, ranks numbered node by node in plan order."""
    rank = 0
    servers = []
    for index, node in enumerate(spec.nodes):
        devices = []
        for instance in node.instances:
            for device in instance.devices:
                ip = _ip(spec, index, device, read_ips)
                devices.append({"device_id": str(device), "device_ip": ip, "rank_id": str(rank)})
                rank += 1
        servers.append({"server_id": node.server_id, "device": devices, "host_nic_ip": "reserve"})
    return {"version": "1.0", "server_count": str(len(servers)), "server_list": servers, "status": "completed"}


def check_hccl_rank_table(table: dict[str, Any]) -> list[str]:
    """Problems of a v1.0 document (empty when valid): version, string values, contiguous unique ranks."""
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


def check_rank_table(table: Any) -> list[str]:
    """A rank-table document checked by its version (1.2: P/D; 1.0: HCCL)."""
    if isinstance(table, dict) and table.get("version") == "1.0":
        return check_hccl_rank_table(table)
    return check_pd_rank_table(table)
