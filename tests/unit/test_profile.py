"""Profiles on demand without an engine: self time from nested trace events, torch_npu's statistics, the server
setting per platform, the case check, and the report section."""

from __future__ import annotations

import gzip
import json
import threading
import time
from pathlib import Path

import pytest

from harness.config.plan import ServerSpec, load_plan
from harness.profile.capture import ProfileError, wait_for_traces, with_profiler
from harness.profile.operators import npu_operator_times, operators_of, self_times, trace_files
from harness.profile.selection import check_profile_case
from harness.server.vllm import ServerConfig

REPO = Path(__file__).resolve().parents[2]


def _op(name: str, ts: float, dur: float, tid: int = 1) -> dict[str, object]:
    return {"ph": "X", "cat": "cpu_op", "name": name, "ts": ts, "dur": dur, "pid": 7, "tid": tid}


def test_self_time_is_duration_less_direct_children() -> None:
    events = [
        _op("aten::linear", 0, 100),  # holds addmm (60) and t (10): 30 of its own
        _op("aten::addmm", 5, 60),
        _op("aten::mul", 10, 20),  # inside addmm: addmm keeps 40
        _op("aten::t", 70, 10),
        _op("aten::linear", 200, 50),  # a second call, no children
        _op("aten::linear", 0, 40, tid=2),  # another thread: not nested in tid 1's
        {"ph": "X", "cat": "python_function", "name": "forward", "ts": 0, "dur": 500, "pid": 7, "tid": 1},
        {"ph": "i", "cat": "cpu_op", "name": "marker", "ts": 3, "pid": 7, "tid": 1},
    ]
    ops = {op.name: op for op in self_times(events, top=10)}
    assert ops["aten::linear"].self_us == 30 + 50 + 40
    assert ops["aten::linear"].calls == 3
    assert ops["aten::addmm"].self_us == 40
    assert ops["aten::mul"].self_us == 20
    assert ops["aten::t"].self_us == 10
    assert "forward" not in ops
    assert "marker" not in ops
    assert sum(op.share for op in ops.values()) == pytest.approx(1.0)
    assert [op.name for op in self_times(events, top=2)] == ["aten::linear", "aten::addmm"]


def test_reads_torch_traces_and_torch_npu_statistics(tmp_path: Path) -> None:
    trace = tmp_path / "worker.1733.pt.trace.json.gz"
    trace.write_bytes(gzip.compress(json.dumps({"traceEvents": [_op("aten::mm", 0, 5)]}).encode()))
    assert trace_files(tmp_path) == [trace]
    assert [(op.name, op.self_us) for op in operators_of([trace])] == [("aten::mm", 5.0)]
    npu = tmp_path / "npu"
    (npu / "w_ascend_pt" / "ASCEND_PROFILER_OUTPUT").mkdir(parents=True)
    statistic = npu / "w_ascend_pt" / "ASCEND_PROFILER_OUTPUT" / "op_statistic.csv"
    statistic.write_text(
        # torch_npu's header (ASCEND_PROFILER_OUTPUT/op_statistic.csv, as Ascend's msprof tools document it)
        "Device_id,OP Type,Core Type,Count,Total Time(us),Min Time(us),Avg Time(us),Max Time(us),Ratio(%)\n"
        "0,MatMulV2,AI_CORE,120,5400.5,10,45,90,60.0\n"
        "0,FlashAttentionScore,AI_CORE,40,3600,50,90,120,40.0\n"
    )
    assert trace_files(npu) == [statistic]
    ops = operators_of([statistic])
    assert [(op.name, op.calls) for op in ops] == [("MatMulV2", 120), ("FlashAttentionScore", 40)]
    assert ops[0].share == pytest.approx(0.6, abs=1e-3)
    assert npu_operator_times("OP Type,Count,Total Time(us)\n") == []


def test_the_server_is_told_where_to_write_as_its_platform_takes_it(tmp_path: Path) -> None:
    spec = ServerSpec(extra_args=("--enforce-eager",))
    cpu = with_profiler(ServerConfig("cpu", tmp_path, spec), tmp_path / "traces")
    assert cpu.spec.extra_args[:2] == ("--enforce-eager", "--profiler-config")
    setting = json.loads(cpu.spec.extra_args[2])
    assert setting["profiler"] == "torch"
    assert setting["torch_profiler_dir"] == str((tmp_path / "traces").resolve())
    npu = with_profiler(ServerConfig("npu", tmp_path, spec), tmp_path / "traces")
    assert dict(npu.env)["VLLM_TORCH_PROFILER_DIR"] == str((tmp_path / "traces").resolve())
    assert npu.spec.extra_args == ("--enforce-eager",)  # vllm-ascend <= 0.13 reads the variable, not the option


class Options:
    """The two pytest options the case check reads (a stand-in for pytest.Config)."""

    def __init__(self, profile: str | None) -> None:
        self.profile = profile

    def getoption(self, name: str, default: object = None) -> object:
        return self.profile if name == "--profile" else default


def test_a_profile_of_a_case_the_plan_lacks_is_refused_up_front() -> None:
    plan = load_plan(REPO / "fixtures/plans/cpu-tiny.yaml")
    check_profile_case(Options("p16-in64-out32"), plan)  # type: ignore[arg-type]
    check_profile_case(Options("rate16-n64"), plan)  # type: ignore[arg-type]
    with pytest.raises(pytest.UsageError, match=r"--profile 'p99-in1-out1': the plan cpu-tiny has no such case; its"):
        check_profile_case(Options("p99-in1-out1"), plan)  # type: ignore[arg-type]


def test_traces_are_collected_once_every_worker_has_written_and_nothing_grows(tmp_path: Path) -> None:
    """With TP 2 each card writes its trace in its own time: the first file to appear is not the profile."""
    (tmp_path / "old.pt.trace.json").write_text("{}")
    before = set(trace_files(tmp_path))

    def write_late() -> None:
        time.sleep(0.3)
        (tmp_path / "rank0.pt.trace.json").write_text("{}")
        time.sleep(0.8)  # the second card, later, and in two writes
        with (tmp_path / "rank1.pt.trace.json").open("w") as f:
            f.write("{")
            f.flush()
            time.sleep(0.5)
            f.write("}")

    writer = threading.Thread(target=write_late)
    writer.start()
    found = wait_for_traces(tmp_path, before, expected=2, settle_s=1.0, timeout_s=30)
    size_when_taken = (tmp_path / "rank1.pt.trace.json").stat().st_size
    writer.join()
    assert [f.name for f in found] == ["rank0.pt.trace.json", "rank1.pt.trace.json"]
    assert size_when_taken == 2, "not taken half-written"
    with pytest.raises(ProfileError, match="wrote no trace"):
        wait_for_traces(tmp_path, set(trace_files(tmp_path)), expected=1, settle_s=0.1, timeout_s=0.5)
