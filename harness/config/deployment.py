"""A plan's `deployment`: several vLLM instances started and stopped together (prefill/decode disaggregation).

    deployment:
      nodes:
        - server-id: 10.155.111.140          # the node's host IP, as the rank table names it
          device-ips: {0: 192.1.27.6, 1: 192.2.27.6, 2: 192.3.27.6, 3: 192.4.27.6}   # from hccn_tool
          instances:
            - {role: prefill, port: 8100, devices: [0, 1]}
            - {role: decode, port: 8200, devices: [2, 3]}

`device-ips` may be left out for a node: its devices' IPs are then read on the node when the rank table is made
(`hccn_tool -i N -ip -g`, harness.deploy.device_ips). A3 nodes give `super-pod-id` and `super-device-ids`
(device -> SDID, from `npu-smi info -t spod-info`).

Checked offline: when device-ips are given, every device of an instance has one; no device serves two instances
of a node; no port is used twice on a node; both roles have instances; an instance's own kv_role (in its server
overrides) matches its role; each instance has tensor x pipeline size devices (checked with the server section).
"""

from __future__ import annotations

import ipaddress
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from harness.config.base import Frozen

KV_ROLES = {"prefill": "kv_producer", "decode": "kv_consumer"}  # vLLM's kv_role of each role


class InstanceSpec(Frozen):
    role: Literal["prefill", "decode", "mixed"]
    port: int = Field(ge=1, le=65535)
    devices: tuple[int, ...] = Field(min_length=1)
    server: dict[str, Any] = Field(default_factory=dict, description="server overrides for this instance")

    @model_validator(mode="after")
    def _kv_role_matches(self) -> InstanceSpec:
        kv = self.server.get("kv-transfer-config") or {}
        given = kv.get("kv_role") if isinstance(kv, dict) else None
        expected = KV_ROLES.get(self.role)
        if given is not None and given != expected:
            raise ValueError(
                f"a {self.role} instance has kv_role {given!r} in its kv-transfer-config; the harness sets "
                f"{expected or 'none'} for this role: drop kv_role or fix the role"
            )
        return self


class NodeSpec(Frozen):
    server_id: str
    device_ips: dict[int, str] = Field(default_factory=dict, description="empty: read on the node (hccn_tool)")
    super_pod_id: str | None = Field(None, description="A3: the node's super pod")
    super_device_ids: dict[int, str] = Field(default_factory=dict, description="A3: device -> super device id")
    instances: tuple[InstanceSpec, ...] = Field(min_length=1)

    @field_validator("server_id")
    @classmethod
    def _ip(cls, value: str) -> str:
        ipaddress.ip_address(value)
        return value

    @model_validator(mode="after")
    def _no_conflicts(self) -> NodeSpec:
        seen_devices: dict[int, int] = {}
        seen_ports: dict[int, int] = {}
        for index, instance in enumerate(self.instances):
            if instance.port in seen_ports:
                raise ValueError(
                    f"instances {seen_ports[instance.port]} and {index} on {self.server_id} both use port "
                    f"{instance.port}"
                )
            seen_ports[instance.port] = index
            for device in instance.devices:
                if device in seen_devices:
                    raise ValueError(
                        f"device {device} on {self.server_id} is given to instances {seen_devices[device]} and {index}"
                    )
                seen_devices[device] = index
                if self.device_ips and device not in self.device_ips:
                    raise ValueError(
                        f"device {device} on {self.server_id} has no entry in device-ips (read it with "
                        f"`hccn_tool -i {device} -ip -g`, or leave device-ips out to read them all on the node)"
                    )
                if self.super_pod_id is not None and device not in self.super_device_ids:
                    raise ValueError(f"device {device} on {self.server_id} has no entry in super-device-ids (A3)")
        for device, ip in self.device_ips.items():
            try:
                ipaddress.ip_address(ip)
            except ValueError as exc:
                raise ValueError(f"device-ips.{device}: {ip!r} is not an IP address") from exc
        return self


class DeploymentSpec(Frozen):
    nodes: tuple[NodeSpec, ...] = Field(min_length=1)
    remote_ready_timeout_s: float = Field(
        1800.0, gt=0, description="node 0 waits this long for the other nodes' instances (llmqual deploy up)"
    )

    @model_validator(mode="after")
    def _roles(self) -> DeploymentSpec:
        roles = {i.role for node in self.nodes for i in node.instances}
        if ("prefill" in roles) != ("decode" in roles):
            raise ValueError("a disaggregated deployment needs both prefill and decode instances")
        ids = [node.server_id for node in self.nodes]
        if len(set(ids)) != len(ids):
            raise ValueError("server-id is repeated: one entry per node")
        return self
