"""A server spanning nodes (plan key `server.nodes`), on vLLM's own multi-node runtime.

vLLM splits one server's data x pipeline x tensor parallel ranks evenly over `--nnodes` nodes. Node 0 (the head)
runs the API server and the engine with its share of the workers; every other node runs `vllm serve ... --headless
--node-rank N` with its share (with data parallel, its engines: vLLM infers their data-parallel ranks from the node
rank). All find each other through torch.distributed at `--master-addr:--master-port`.
The keys keep vLLM's meaning; `local` says which of the node ranks this machine starts (the others are started on
their own nodes with the commands `llmqual plan explain` prints), and `ranks` holds what differs per node.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from harness.config.base import Frozen


class NodeRank(Frozen):
    """What one node rank gets beyond the plan's server settings."""

    devices: tuple[int, ...] | None = Field(None, description="the node's cards (NPU/GPU ids) its ranks run on")
    cpus: tuple[int, ...] | None = Field(None, description="cores the node's processes may run on (Linux affinity)")
    env: dict[str, str] = Field(default_factory=dict, description="on top of server.env, for this node's processes")


def bound_cores(spec: str) -> set[int]:
    """The cores a VLLM_CPU_OMP_THREADS_BIND value names ("0", "0-3", "0-1|2-3", "0,2"); empty for "auto"."""
    cores: set[int] = set()
    for part in spec.replace("|", ",").split(","):
        part = part.strip()
        if not part or part in ("auto", "nobind"):
            continue
        first, _, last = part.partition("-")
        if not first.isdigit() or not (last or first).isdigit():
            raise ValueError(f"VLLM_CPU_OMP_THREADS_BIND {spec!r} is not a list of cores, e.g. 0-3|4-7")
        cores.update(range(int(first), int(last or first) + 1))
    return cores


class NodesSpec(Frozen):
    """`--nnodes`, `--master-addr`, `--master-port`, and which node ranks run here."""

    count: int = Field(ge=2, le=64, description="--nnodes: how many nodes the server spans")
    master_addr: str = Field(min_length=1, description="--master-addr: the head node's address, reachable from all")
    master_port: int | None = Field(None, ge=1, le=65535, description="--master-port; by default a free one")
    local: tuple[int, ...] = Field((0,), description="the node ranks this machine starts")
    ranks: tuple[NodeRank, ...] = Field((), description="per node rank, in rank order: its devices, cores, env")

    @model_validator(mode="after")
    def _ranks_fit(self) -> NodesSpec:
        if not self.local or len(set(self.local)) != len(self.local):
            raise ValueError("local must list distinct node ranks, e.g. [0] (the head) or [0, 1]")
        outside = [r for r in self.local if not 0 <= r < self.count]
        if outside:
            raise ValueError(f"local names node rank {outside[0]}; node ranks are 0 to {self.count - 1} (count)")
        if self.ranks and len(self.ranks) != self.count:
            raise ValueError(f"ranks has {len(self.ranks)} entries; give one per node rank ({self.count}) or none")
        self._no_shared_device()
        return self

    def _no_shared_device(self) -> None:
        """Two node ranks on this machine must not run on one card, nor bind their engines to one core."""
        if not self.ranks:
            return
        for what, of in (
            ("devices", lambda r: set(r.devices or ())),
            ("cores of VLLM_CPU_OMP_THREADS_BIND", lambda r: bound_cores(r.env.get("VLLM_CPU_OMP_THREADS_BIND", ""))),
        ):
            taken: dict[int, int] = {}
            for rank in self.local:
                for item in sorted(of(self.ranks[rank])):
                    if item in taken:
                        raise ValueError(
                            f"ranks[{rank}] and ranks[{taken[item]}] both run here and share {what} {item}: give "
                            "each node rank on this machine its own"
                        )
                    taken[item] = rank

    def check_world(self, world: int) -> None:
        """The server's world size (data x pipeline x tensor parallel) must split evenly over the nodes, and a
        node's cards must be as many as its share."""
        if world % self.count:
            raise ValueError(
                f"nodes.count {self.count} does not divide data x pipeline x tensor parallel size ({world}): "
                "vLLM gives every node an equal share of the ranks"
            )
        for node, rank in enumerate(self.ranks):
            if rank.devices is not None and len(rank.devices) != self.per_node(world):
                raise ValueError(
                    f"nodes.ranks[{node}].devices lists {len(rank.devices)} cards; each node runs "
                    f"{self.per_node(world)} of the {world} ranks"
                )

    def rank(self, node: int) -> NodeRank:
        return self.ranks[node] if self.ranks else NodeRank()

    def per_node(self, world: int) -> int:
        """The parallel ranks each node runs: the server's world size (data x pipeline x tensor) over the nodes."""
        return world // self.count
