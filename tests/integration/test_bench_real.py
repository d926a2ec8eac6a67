"""The benchmark CLI against a real vLLM server, and against `vllm bench serve` on the same server and workload.

Counts must be equal; medians must agree within run-to-run noise, which the test measures by running each client
twice, interleaved (a fixed ratio band failed when the machine was busy with something else).

The server is the one the integration modules share. The comparison uses a ShareGPT file the project generates,
every record sent once, all at once, with a fixed output length (vLLM counts an answer's length with the
tokenizer's BOS included, so the answers' own lengths would ask it for one token more per request than the harness
asks). Trace replay is checked here too: the command, and a planted prompt maker that ignores the hash ids.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.bench import replay
from harness.bench.cases import LoadSettings
from harness.bench.consistency import run_consistency
from harness.bench.replay import load_trace
from harness.config.workloads import ConsistencySpec, ReplaySpec
from harness.gates.gate import GatePolicy, gate
from harness.load.samples import Sample
from harness.load.tokens import Tokens
from harness.load.traces import Trace, trace_samples
from harness.server.endpoint import connect_endpoint
from tests.integration.procs import REPO, VLLM_BENCH, harness_env
from tests.integration.servers import PLAN, Served

pytestmark = pytest.mark.integration

PROMPTS = 48
OUTPUT_LEN = 24


@pytest.fixture(scope="module")
def served(served: Served) -> tuple[str, Path, str]:
    """(base URL, tokenizer folder, process tag) of the shared tiny-model server (tests/integration/conftest.py)."""
    return served.endpoint.base_url, served.model_path, served.tag


def llmqual(tag: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "harness.cli", *args]
    return subprocess.run(command, env=harness_env(tag), capture_output=True, text=True, timeout=900, cwd=REPO)


def host_port(url: str) -> tuple[str, str]:
    host, port = url.removeprefix("http://").split(":")
    return host, port


def test_the_guides_benchmark_parallel_line(served: tuple[str, Path, str], tmp_path: Path) -> None:
    """benchmark_parallel.py's line from the ModelArts guides, sizes scaled to the tiny model."""
    url, tokenizer, tag = served
    host, port = host_port(url)
    csv_path, result = tmp_path / "benchmark_parallel.csv", tmp_path / "static.json"
    done = llmqual(
        tag, "bench", "static", "--backend", "openai", "--host", host, "--port", port, "--tokenizer", str(tokenizer),
        "--epochs", "2", "--parallel-num", "1", "4", "--prompt-tokens", "32", "128", "--output-tokens", "8", "16",
        "--benchmark-csv", str(csv_path), "--served-model-name", "tiny-llama", "--result-json", str(result),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    raw = csv_path.read_bytes()
    assert raw.startswith("\ufeff输入长度,输出长度,并发数".encode()), "the scripts' BOM and header"
    rows = raw.decode("utf-8-sig").split("\r\n")
    assert [r.split(",")[:3] for r in rows[1:-1]] == [
        ["32.0", "8.0", "1"], ["32.0", "8.0", "4"], ["128.0", "16.0", "1"], ["128.0", "16.0", "4"]
    ]  # fmt: skip
    assert rows[-1] == "", "CRLF after every row"
    summaries = json.loads(result.read_text())
    assert [s["completed"] for s in summaries] == [2, 8, 2, 8]
    assert [s["total_output_tokens"] for s in summaries] == [16, 64, 32, 128]
    assert [s["total_input_tokens"] for s in summaries] == [64, 256, 256, 1024], "exact prompt lengths"
    assert all(s["valid"] for s in summaries)
    # The scripts' console lines, once per case, and the token check.
    assert done.stdout.count("首tokens时延TP99:") == 4
    assert "token check: 2 requests asked for 16 output tokens, the server counted 16 (its usage" in done.stdout
    assert "epoch: 100%|" in done.stderr


def test_dynamic_counts_equal_vllm_bench_serve(served: tuple[str, Path, str], tmp_path: Path) -> None:
    url, tokenizer, tag = served
    custom, sharegpt = tmp_path / "custom.json", tmp_path / "sharegpt.json"
    # generate_dataset.py's and convert_to_sharegpt.py's lines from the guides
    assert llmqual(
        tag, "dataset", "generate", "--dataset", str(custom), "--tokenizer", str(tokenizer),
        "--num-requests", str(PROMPTS), "--avg-input", "120", "--std-input", "40", "--min-input", "16",
        "--max-input", "400", "--avg-output", "24", "--std-output", "6", "--min-output", "4", "--max-output", "48",
    ).returncode == 0  # fmt: skip
    converted = llmqual(
        tag, "dataset", "to-sharegpt", "--input_file_path", str(custom), "--out_file_name", str(sharegpt),
        "--prefix_name", "None", "--input_name", "input", "--output_name", "output", "--code_type", "utf-8",
    )  # fmt: skip
    assert converted.returncode == 0, converted.stderr[-2000:]

    # Two rounds of (harness, vllm bench serve): each client's two runs show the run-to-run noise.
    ours: list[dict[str, Any]] = []
    theirs: list[dict[str, Any]] = []
    for i in (1, 2):
        ours.append(run_llmqual(tag, url, tokenizer, sharegpt, tmp_path / f"llmqual{i}"))
        theirs.append(run_vllm_bench(tag, url, tokenizer, sharegpt, tmp_path, f"vllm{i}.json"))
    # Our --save-result file has every field of vLLM's own, in vLLM's order (vLLM's comparison scripts read it).
    assert list(ours[0]) == list(theirs[0]), set(ours[0]) ^ set(theirs[0])
    print(f"\n{'metric':24} {'llmqual 1':>11} {'llmqual 2':>11} {'vllm 1':>11} {'vllm 2':>11}")
    for key in ("completed", "total_input_tokens", "total_output_tokens", "median_ttft_ms", "median_tpot_ms"):
        print(f"{key:24} " + " ".join(f"{r[key]:11.2f}" for r in (*ours, *theirs)))
    for run in (*ours, *theirs):
        assert run["completed"] == PROMPTS
        assert run["total_input_tokens"] == theirs[0]["total_input_tokens"]
        assert run["total_output_tokens"] == PROMPTS * OUTPUT_LEN
    # Timings: on two cores each client's own CPU use slows the server it measures. vllm bench serve's client is
    # the heavier one: in CI runs it saw 10-30% higher medians than the harness, in other runs lower (bunched
    # streams; one earlier pair had the harness 17% higher on TPOT). The harness's own gate judges the difference
    # beyond that noise: the harness must not measure slower than vLLM's client by more than 25% (it would be
    # adding its own overhead), nor faster by more than half (an error of units or definitions would).
    for key in ("median_ttft_ms", "median_tpot_ms"):
        a, b = [r[key] for r in ours], [r[key] for r in theirs]
        for sign, allowed in ((-1, 0.25), (1, 0.50)):
            verdict = gate(key, b, a, GatePolicy(tolerance=allowed, detect=allowed), sign=sign)
            assert verdict.outcome != "fail", f"llmqual {a} vs vllm bench serve {b}: {verdict.message}"


def run_llmqual(tag: str, url: str, tokenizer: Path, sharegpt: Path, out: Path) -> dict[str, Any]:
    """benchmark_serving.py's line from the guides (the tiny model's sizes), with vLLM's --save-result."""
    host, port = host_port(url)
    done = llmqual(
        tag, "bench", "dynamic", "--backend", "openai", "--host", host, "--port", port, "--tokenizer", str(tokenizer),
        "--served-model-name", "tiny-llama", "--dataset", str(sharegpt), "--dataset-type", "sharegpt",
        "--request-rate", "inf", "--num-prompts", str(PROMPTS), "--max-tokens", "1024", "--max-prompt-tokens", "900",
        "--fixed-output-len", str(OUTPUT_LEN), "--benchmark-csv", str(out / "benchmark_serving.csv"),
        "--save-result", "--result-dir", str(out), "--result-filename", "result.json",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "输出tokens总吞吐:" in done.stdout
    assert (out / "benchmark_serving.csv").read_bytes().startswith("\ufeff数据集".encode())
    summary: dict[str, Any] = json.loads((out / "result.json").read_text())
    return summary


def run_vllm_bench(tag: str, url: str, tokenizer: Path, sharegpt: Path, folder: Path, name: str) -> dict[str, Any]:
    vllm = subprocess.run(
        [
            sys.executable, "-c", VLLM_BENCH, "--backend", "vllm", "--base-url", url, "--model", "tiny-llama",
            "--tokenizer", str(tokenizer), "--dataset-name", "sharegpt", "--dataset-path", str(sharegpt),
            "--num-prompts", str(PROMPTS), "--sharegpt-output-len", str(OUTPUT_LEN), "--request-rate", "inf",
            "--ignore-eos", "--seed", "0", "--disable-tqdm", "--save-result", "--result-dir", str(folder),
            "--result-filename", name,
        ],
        env=harness_env(tag), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert vllm.returncode == 0, vllm.stdout[-3000:] + vllm.stderr[-3000:]
    summary: dict[str, Any] = json.loads((folder / name).read_text())
    return summary


def test_llmqual_bench_replay_holds_the_servers_hit_rate_to_the_traces(
    served: tuple[str, Path, str], tmp_path: Path
) -> None:
    """The plan's generated trace replayed by the command against this server: the hit rate agrees (exit 0)."""
    url, tokenizer, tag = served
    done = llmqual(
        tag, "bench", "replay", "--plan", str(PLAN), "--base-url", url, "--tokenizer", str(tokenizer),
        "--max-requests", "80", "--out", str(tmp_path),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    document = json.loads((tmp_path / "replay.json").read_text())
    check = document["checks"]["replay"]
    assert check["outcome"] == "pass", check["message"]
    assert check["baseline_mean"] > 0.3, "the trace shares prefixes"
    assert document["config"]["cache_block"] == 128, "the CPU build's KV block, read from its /metrics"
    assert document["metrics"]["completed"] == 80
    assert len(check["timeline"]) == 80
    assert (tmp_path / "trace.jsonl").is_file(), "the generated trace is kept"


def test_replay_fails_prompts_that_do_not_honour_the_hash_ids(
    served: tuple[str, Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Planted fault: the prompt maker gives every block ids of its own, so nothing the trace shares is shared."""
    url, tokenizer, _ = served
    spec = ReplaySpec.model_validate({"generate": {"count": 60, "rate": 20, "shared": 4, "seed": 7}, "block-size": 128})
    trace, _ = load_trace(spec, Path, tmp_path)

    def scrambled(trace: Trace, vocabulary: Any, seed: int) -> list[Sample]:
        own = tuple(
            dataclasses.replace(r, hash_ids=tuple(range(1000 * i, 1000 * i + len(r.hash_ids))))
            for i, r in enumerate(trace.requests)
        )
        return trace_samples(Trace(own, trace.block_size), vocabulary, seed)

    monkeypatch.setattr(replay, "trace_samples", scrambled)
    result = replay.run_replay(
        connect_endpoint(url, None, "tiny-llama"), Tokens.load(tokenizer), trace, spec, LoadSettings(), "scrambled"
    )
    check = result.checks["replay"]
    assert check["outcome"] == "fail"
    assert "did not reuse what the trace shares" in check["message"]
    assert check["candidate_mean"] < 0.05, "the server hit nothing"
    assert check["baseline_mean"] > 0.3, "though the trace implies it could"


def test_consistency_names_answers_that_change_when_sampling_is_left_on(served: tuple[str, Path, str]) -> None:
    """Planted fault: temperature 1 instead of greedy (a sampling setting left on), so the answers alone and under
    load differ on the real engine; the check names them."""
    url, tokenizer, _ = served
    spec = ConsistencySpec(prompts=6, prompt_tokens=48, prefix_tokens=16, output_tokens=24)
    sampling = LoadSettings(extra_body={"temperature": 1.0})
    result = run_consistency(connect_endpoint(url, None, "tiny-llama"), Tokens.load(tokenizer), spec, sampling)
    check = result.checks["consistency"]
    assert check["outcome"] == "fail"
    assert "greedy answers differ at concurrency 6" in check["message"]
    assert check["divergences"], "each named with where it parts"
    assert all({"request", "char", "alone", "under_load"} <= set(d) for d in check["divergences"])
