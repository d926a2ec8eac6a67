"""A server spanning nodes: the plan's bad inputs refused with the key and the fix before any process starts, and
the secondary ranks' commands as vLLM's multi-node runtime takes them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.config.nodes import NodesSpec, bound_cores
from harness.config.plan import load_plan
from harness.errors import HarnessError, PlanError, ServerStartError
from harness.server.node_rank import checked_rank
from harness.server.ranks import master_port_for, rank_argv

REPO = Path(__file__).resolve().parents[2]
MULTINODE = REPO / "fixtures/plans/cpu-tiny-multinode.yaml"


def plan_with(tmp_path: Path, server: dict[str, Any], container: dict[str, Any] | None = None) -> Path:
    plan = yaml.safe_load(MULTINODE.read_text())
    plan["server"].update(server)
    if container is not None:
        plan["container"] = container
    plan["suites"]["accuracy"]["include-path"] = str(REPO / "fixtures/lm_eval_tasks")
    plan["suites"]["accuracy"]["baselines"] = str(REPO / "fixtures/baselines/accuracy/tiny-llama.yaml")
    plan["suites"]["training"]["reference"] = str(REPO / "fixtures/baselines/training/cpu-tiny-sft.json")
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


def nodes(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = yaml.safe_load(MULTINODE.read_text())["server"]["nodes"]
    return {"nodes": {**base, **changes}}


def test_the_shipped_multinode_plan_is_valid() -> None:
    spec = load_plan(MULTINODE).server.nodes
    assert spec is not None
    assert (spec.count, spec.local, spec.per_node(2)) == (2, (0, 1), 1)


@pytest.mark.parametrize(
    ("server", "words"),
    [
        (
            {"tensor-parallel-size": 3, **nodes()},
            "nodes.count 2 does not divide data x pipeline x tensor parallel size (3)",
        ),
        (nodes(local=[0, 2]), "local names node rank 2; node ranks are 0 to 1"),
        (nodes(local=[0, 0]), "local must list distinct node ranks"),
        (nodes(ranks=[{}]), "ranks has 1 entries; give one per node rank (2)"),
        (
            nodes(ranks=[{"env": {"VLLM_CPU_OMP_THREADS_BIND": "0-1"}}, {"env": {"VLLM_CPU_OMP_THREADS_BIND": "1"}}]),
            "ranks[1] and ranks[0] both run here and share cores of VLLM_CPU_OMP_THREADS_BIND 1",
        ),
        (nodes(ranks=[{"devices": [0]}, {"devices": [0]}]), "ranks[1] and ranks[0] both run here and share devices 0"),
        (nodes(ranks=[{"devices": [0, 1]}, {"devices": [2, 3]}]), "ranks[0].devices lists 2 cards; each node runs 1"),
        (nodes(count=1), "count"),
    ],
)
def test_nodes_that_do_not_add_up_are_refused_naming_the_key(
    tmp_path: Path, server: dict[str, Any], words: str
) -> None:
    with pytest.raises(PlanError) as info:
        load_plan(plan_with(tmp_path, server))
    assert words in str(info.value)
    assert "server" in str(info.value)


def test_a_container_plan_starts_only_the_head_here(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match=r"local must be \[0\] with a container"):
        load_plan(plan_with(tmp_path, {}, container={"image": "llmqual-cpu-base"}))


def test_a_head_whose_master_address_is_not_this_machine_is_refused_before_any_process() -> None:
    spec = NodesSpec(count=2, master_addr="192.0.2.1", local=(0, 1))  # TEST-NET-1: never this machine's
    with pytest.raises(ServerStartError, match=r"master-addr 192\.0\.2\.1 is not an address of this machine"):
        master_port_for(spec)
    with pytest.raises(ServerStartError, match="local must include 0"):
        master_port_for(NodesSpec(count=2, master_addr="127.0.0.1", local=(1,)))
    assert master_port_for(NodesSpec(count=2, master_addr="127.0.0.1", master_port=29555)) == 29555


def test_a_secondary_rank_is_the_heads_options_headless_without_a_listener() -> None:
    spec = NodesSpec(count=2, master_addr="10.0.0.1", master_port=29500)
    base = ["--model", "/m", "--host", "127.0.0.1", "--port", "8000", "--tensor-parallel-size", "2"]
    assert rank_argv("vllm", base, spec, 1, 29500) == [
        "vllm", "serve", "--model", "/m", "--tensor-parallel-size", "2",
        "--nnodes", "2", "--node-rank", "1", "--master-addr", "10.0.0.1", "--master-port", "29500", "--headless",
    ]  # fmt: skip
    assert rank_argv("/py", base, spec, 1, 29500)[:3] == ["/py", "-m", "harness.server.vllm_serve"]


def test_omp_bindings_name_their_cores() -> None:
    assert bound_cores("0-1|4") == {0, 1, 4}
    assert bound_cores("auto") == set()
    with pytest.raises(ValueError, match="not a list of cores"):
        bound_cores("x-2")


def test_a_rank_started_on_its_own_node_is_checked_before_anything_starts(tmp_path: Path) -> None:
    single = load_plan(REPO / "fixtures/plans/cpu-tiny.yaml")
    with pytest.raises(HarnessError, match=r"--node-rank needs a server spanning nodes \(server.nodes\)"):
        checked_rank(single, 1)
    plan = load_plan(MULTINODE)
    with pytest.raises(HarnessError, match="node rank 0 is the head"):
        checked_rank(plan, 0)
    with pytest.raises(HarnessError, match="master-port must be set"):
        checked_rank(plan, 1)
    fixed = load_plan(plan_with(tmp_path, nodes(**{"master-port": 29511})))
    assert checked_rank(fixed, 1) == 29511
