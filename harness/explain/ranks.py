"""The steps of a server spanning nodes that run on its other nodes: each headless rank (in its container, on a
container plan) and, for a deployment on Ascend, the rank table each node writes."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path

from harness.config.nodes import NodesSpec
from harness.config.plan import Plan
from harness.deploy.multi import rank_table_of
from harness.errors import HarnessError
from harness.explain.steps import CONTAINER_NAME, Step, masked
from harness.runtime.container import Container
from harness.server.ranks import rank_argv, rank_env
from harness.server.vllm import VLLMServer, vllm_arguments


def _other_nodes(server: VLLMServer, port: int | str) -> Iterator[tuple[int, NodesSpec, list[str], int | str]]:
    """Each node rank past the head of a server spanning nodes (none on one node), with the nodes, the head's
    `vllm serve` options and the master port."""
    nodes = server.config.spec.nodes
    if nodes is None:
        return
    base = vllm_arguments(server.config, server.host, port)
    for node in range(1, nodes.count):
        yield node, nodes, base, nodes.master_port or server.master_port


def container_rank_steps(server: VLLMServer, head: Container, port: int | str) -> list[Step]:
    """Each other node of a container plan spanning nodes: its container (the same spec, its own cards) and the
    headless rank inside, with the image's `vllm serve`; run on that node (not started by this run)."""
    config, steps = server.config, []
    for node, nodes, base, master_port in _other_nodes(server, port):
        cards = tuple(nodes.rank(node).devices or head.cards)
        container = copy.copy(head)  # the same spec, reads and writes; this node's cards and its own name
        container.cards, container.name = list(cards), f"{CONTAINER_NAME}-node{node}"
        env = {**dict(config.env), **nodes.rank(node).env}
        inner = rank_argv("vllm", base, nodes, node, master_port)
        run_here = f"run on node {node} (this run starts node 0 only); the head is ready when every rank has joined"
        steps += [
            Step("container", f"for node rank {node}", node, tuple(container.run_argv()), (), cards, notes=(run_here,)),
            Step(
                "server", f"node rank {node} of the plan's server (headless), in the container", node,
                tuple(container.exec_argv(inner, env_names=list(env))), masked(env), cards,
                notes=(f"joins torch.distributed at {nodes.master_addr}:{master_port}",),
            ),
        ]  # fmt: skip
    return steps


def rank_steps(server: VLLMServer, port: int | str) -> list[Step]:
    """The secondary node ranks of a server spanning nodes, each on its node."""
    config, steps = server.config, []
    for node, nodes, base, master_port in _other_nodes(server, port):
        env = masked({**config.process_env(), **rank_env(config.platform, nodes, node)})
        where = (
            "started here (server.nodes.local), its log beside the head's"
            if node in nodes.local
            else f"run on node {node}, with the same model path; the head is ready only when every rank has joined"
        )
        argv = tuple(rank_argv(server.python, base, nodes, node, master_port))
        what = f"node rank {node} of the plan's server (headless)"
        notes = (where, f"joins torch.distributed at {nodes.master_addr}:{master_port}")
        steps.append(Step("server", what, node, argv, env, nodes.rank(node).devices or (), notes=notes))
    return steps


def rank_table_step(plan: Plan, node: int, table: Path, first: str = "") -> Step:
    """The rank table node `node` writes; device IPs the plan leaves out are read there (placeholders here). The
    text is left out when it is `first`, the one node 0 writes."""
    assert plan.deployment is not None
    entry = plan.deployment.nodes[node]
    flag = "-vnic -g" if entry.super_pod_id is not None else "-ip -g"
    what = "the v1.2 rank table its instances read"
    try:
        document = rank_table_of(plan, node, lambda cards: {d: f"<read here: hccn_tool -i {d} {flag}>" for d in cards})
    except HarnessError as exc:
        return Step("rank table", what, node, writes=(str(table),), notes=(f"the run would stop here: {exc}",))
    notes = [] if entry.device_ips else [f"device-ips not in the plan: read on this node with hccn_tool -i N {flag}"]
    content = json.dumps(document, indent=2)
    if content == first:
        notes.append("the same document as node 0's")
    return Step(
        "rank table", what, node, writes=(str(table),), notes=tuple(notes), content="" if content == first else content
    )
