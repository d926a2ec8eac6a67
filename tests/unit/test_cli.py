"""The llmqual command: plan checks, platform listing, the bench and dataset commands (bad input first)."""

from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from tests.fakes import fake_server_thread

REPO = Path(__file__).resolve().parents[2]


def test_plan_check_accepts_the_shipped_plans(capsys: pytest.CaptureFixture[str]) -> None:
    plans = sorted(str(p) for p in (REPO / "fixtures/plans").glob("*.yaml"))
    assert main(["plan", "check", "--schema-only", *plans]) == 0
    assert capsys.readouterr().out.count(": ok (") == len(plans)
    here = [p for p in plans if "/cpu-" in p]  # the CPU plans are runnable on this machine as they are
    assert main(["plan", "check", *here]) == 0
    assert capsys.readouterr().out.count("; keys, values and this machine)") == len(here)


def test_plan_check_names_the_bad_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nplatform: cpu\nmodel: {tiny: {}}\nserver: {dtype: fp33}\n")
    assert main(["plan", "check", str(bad)]) == 2
    assert f"{bad}: server.dtype:" in capsys.readouterr().err


def test_plan_check_refuses_a_missing_model_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    """It said ok for a missing model path unless asked with --runnable."""
    assert main(["plan", "check", str(REPO / "fixtures/plans/npu-qwen2.5-7b-910b.yaml")]) == 2
    assert "model.path: no model directory" in capsys.readouterr().err


def test_plan_check_of_a_container_plan_says_docker_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # planted: no docker on PATH
    assert main(["plan", "check", str(REPO / "fixtures/plans/cpu-tiny-container.yaml")]) == 2
    err = capsys.readouterr().err
    assert "the plan's container section needs Docker, and docker is not installed: run scripts/docker-up" in err


def test_plan_check_of_a_vendor_image_that_is_not_on_the_node(
    tmp_path: Path, docker_log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = tmp_path / "p.yaml"
    text = (REPO / "fixtures/plans/cpu-tiny-container.yaml").read_text()
    plan.write_text(text.replace("image: llmqual/cpu-base", "image: nope/vllm:1").replace("../", f"{REPO}/fixtures/"))
    (docker_log.parent / "bin" / "docker").write_text(
        "#!/bin/bash\n[ \"$1\" = image ] && { echo 'Error: No such image: nope/vllm:1' >&2; exit 1; }\necho 20.10\n"
    )  # a fake: a daemon that answers and has no such image
    assert main(["plan", "check", str(plan)]) == 2
    err = capsys.readouterr().err
    assert "container.image nope/vllm:1 is not on this node's docker" in err
    assert "No such image: nope/vllm:1" in err


def test_platform_lists_every_platform(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["platform"]) == 0
    out = capsys.readouterr().out
    assert "npu: absent (no Ascend NPU" in out
    assert "cpu: available" in out


DEAD_URL = "http://127.0.0.1:9"  # nothing listens: any attempt to connect fails


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["static", "--parallel-num", "1", "--prompt-tokens", "8", "16", "--output-tokens", "4"], "pair one to one"),
        (["dynamic", "--request-rate", "1", "2", "--num-prompts", "5"], "pair one to one"),
        (["dynamic", "--dataset-type", "sharegpt", "--request-rate", "1", "--num-prompts", "5"], "needs --dataset"),
        (["dynamic", "--request-rate", "1", "--num-prompts", "5", "--goodput", "ttfb:5"], "--goodput takes KEY:MS"),
        (
            ["static", "--parallel-num", "1", "--prompt-tokens", "8", "--output-tokens", "4", "--client-cpus", "4096"],
            "--client-cpus: core(s) [4096] are not usable here",
        ),
        (
            ["static", "--parallel-num", "1", "--prompt-tokens", "8", "--output-tokens", "4", "--client-workers", "0"],
            "--client-workers 0: input should be greater than or equal to 1",
        ),
        (
            ["dynamic", "--request-rate", "1", "--num-prompts", "5", "--min-rate-fraction", "1.5"],
            "--min-rate-fraction 1.5: input should be less than or equal to 1",
        ),
        (["dynamic", "--request-rate", "1", "--num-prompts", "5", "--case-deadline", "0"], "--case-deadline 0.0:"),
    ],
)
def test_bench_refuses_bad_lists_before_contacting_the_server(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", *args, "--base-url", DEAD_URL, "--tokenizer", "/nonexistent"]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "not reachable" not in err


def test_bench_names_a_bad_tokenizer_and_an_unreachable_server(
    tokenizer_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    static = ["bench", "static", "--parallel-num", "1", "--prompt-tokens", "8", "--output-tokens", "4"]
    assert main([*static, "--base-url", DEAD_URL, "--tokenizer", "/nonexistent"]) == 2
    assert "cannot load a tokenizer from /nonexistent" in capsys.readouterr().err
    assert main([*static, "--base-url", DEAD_URL, "--tokenizer", str(tokenizer_dir)]) == 2
    assert f"{DEAD_URL} is not reachable" in capsys.readouterr().err


def test_bench_dynamic_refuses_an_empty_dataset_before_contacting_the_server(
    tokenizer_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.json"
    empty.write_text("")
    args = ["bench", "dynamic", "--dataset", str(empty), "--dataset-type", "custom", "--request-rate", "1"]
    assert main([*args, "--num-prompts", "5", "--base-url", DEAD_URL, "--tokenizer", str(tokenizer_dir)]) == 2
    assert f"{empty}: the dataset is empty" in capsys.readouterr().err


def test_bench_static_writes_csv_and_json_per_case(tokenizer_dir: Path, tmp_path: Path) -> None:
    csv_path, result = tmp_path / "s.csv", tmp_path / "s.json"
    with fake_server_thread("fast") as endpoint:
        code = main(
            ["bench", "static", "--base-url", endpoint.base_url, "--tokenizer", str(tokenizer_dir),
             "--parallel-num", "1", "2", "--prompt-tokens", "8", "--output-tokens", "4", "--epochs", "2",
             "--benchmark-csv", str(csv_path), "--csv-layout", "english", "--result-json", str(result)]
        )  # fmt: skip
    assert code == 0
    rows = csv_path.read_text().splitlines()
    assert rows[0].startswith("input_len,output_len,parallel_num")
    assert len(rows) == 3
    summaries = json.loads(result.read_text())
    assert [(s["parallel_num"], s["completed"], s["total_output_tokens"]) for s in summaries] == [(1, 2, 8), (2, 4, 16)]


def test_dataset_commands_make_a_sharegpt_file(tokenizer_dir: Path, tmp_path: Path) -> None:
    custom, sharegpt = tmp_path / "c.json", tmp_path / "s.json"
    assert main(["dataset", "generate", "--tokenizer", str(tokenizer_dir), "--num", "5", "-o", str(custom),
                 "--input-mean", "20", "--input-min", "4", "--input-max", "40",
                 "--output-mean", "8", "--output-min", "2", "--output-max", "16"]) == 0  # fmt: skip
    assert len(json.loads(custom.read_text())) == 5
    assert main(["dataset", "to-sharegpt", str(custom), "-o", str(sharegpt)]) == 0
    assert json.loads(sharegpt.read_text())[0]["conversations"][0]["from"] == "human"


def test_bench_result_json_keeps_every_repeat(
    tokenizer_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the CSV goes to benchmark_parallel.csv here, as the AscendCloud tool writes it
    result = tmp_path / "s.json"
    with fake_server_thread("fast") as endpoint:
        code = main(
            ["bench", "static", "--base-url", endpoint.base_url, "--tokenizer", str(tokenizer_dir),
             "--parallel-num", "2", "--prompt-tokens", "8", "--output-tokens", "4", "--epochs", "1",
             "--num-warmups", "0", "--repeats", "3", "--result-json", str(result)]
        )  # fmt: skip
    assert code == 0
    (summary,) = json.loads(result.read_text())
    assert [r["total_output_tokens"] for r in summary["repeats"]] == [8, 8, 8]
    assert summary["output_throughput"] == summary["repeats"][-1]["output_throughput"], "the case is its last repeat"
    assert (tmp_path / "benchmark_parallel.csv").exists()


def test_ctrl_c_in_bench_is_one_line_not_a_traceback(tokenizer_dir: Path) -> None:
    """`llmqual bench` and `eval` printed a traceback on Ctrl-C; now a line, and the shell's code for SIGINT."""
    static = [
        "bench",
        "static",
        "--parallel-num",
        "1",
        "--prompt-tokens",
        "8",
        "--output-tokens",
        "4",
        "--epochs",
        "99",
    ]
    with fake_server_thread("stalls") as endpoint:  # each request stalls 2 s mid-stream: Ctrl-C lands mid-case
        argv = [sys.executable, "-m", "harness.cli", *static, "--base-url", endpoint.base_url]
        with subprocess.Popen(
            [*argv, "--tokenizer", str(tokenizer_dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        ) as proc:
            assert proc.stderr is not None
            ready, _, _ = select.select([proc.stderr], [], [], 60)  # it has started talking to the server
            assert ready, "the bench said nothing within 60 s"
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert b"llmqual bench: interrupted" in err
    assert b"Traceback" not in err


def test_a_single_server_command_refuses_a_pd_plan(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--plan", str(REPO / "fixtures/plans/cpu-tiny-pd.yaml")]) == 2
    err = capsys.readouterr().err
    assert "is a prefill/decode deployment: `llmqual serve` starts one server" in err
    assert "llmqual deploy up --plan FILE" in err


def test_a_rank_table_of_a_cpu_plan_is_refused_naming_why(capsys: pytest.CaptureFixture[str]) -> None:
    """It said 'cannot run hccn_tool': true, and beside the point."""
    assert main(["deploy", "ranktable", "--plan", str(REPO / "fixtures/plans/cpu-tiny-pd.yaml")]) == 2
    assert "is a cpu plan: a rank table lists Ascend NPU devices, and this plan has none" in capsys.readouterr().err


def test_bench_sla_against_a_base_url_needs_only_a_tokenizer(
    tokenizer_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --base-url the plan's model is not built or trained: the tokenizer given is all it loads (it trained
    the plan's model before the server was even asked)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("LLMQUAL_CACHE_DIR", str(cache))
    plan = str(REPO / "fixtures/plans/cpu-tiny-capacity.yaml")
    args = ["bench", "sla", "--plan", plan, "--base-url", DEAD_URL, "--tokenizer", str(tokenizer_dir)]
    assert main([*args, "--out", str(tmp_path / "out")]) == 2
    assert f"{DEAD_URL} is not reachable" in capsys.readouterr().err
    assert not any((cache / d).exists() for d in ("trained", "models")), sorted(p.name for p in cache.iterdir())
