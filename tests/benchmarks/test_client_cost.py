"""The client's own cost, side by side with `vllm bench serve`, in one run.

Both clients, as their own processes pinned to core 0, run the same workload against the instant fake on core 1:
random prompts, 32 streamed events per request, every request at once (rate inf) with 64 in flight. Two figures
per client: the requests per second it holds (its own report of the run) and the CPU its whole process spent
(user + system, from the kernel's accounting of the child: start-up, the run and everything after it) per
streamed event. Reported as extra_info and printed with the ratios; speed is never asserted. Both runs must
complete every request.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.config.plan import load_plan
from harness.model.resolve import base_model
from harness.paths import cache_root
from harness.server.endpoint import Endpoint
from tests.integration.procs import REPO, VLLM_BENCH

REQUESTS = 4000
EVENTS = 32
IN_FLIGHT = 64
CLIENT_CPU = 0


def _pinned() -> None:  # pragma: no cover - runs in the child between fork and exec
    os.sched_setaffinity(0, {CLIENT_CPU})


def run_measured(argv: list[str], log: Path) -> tuple[str, float]:
    """Run `argv` pinned to the client's core; (its output, CPU seconds its process and children used)."""
    with log.open("w") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, preexec_fn=_pinned)
        try:
            _, status, usage = os.wait4(process.pid, 0)
        except BaseException:
            process.kill()
            process.wait()
            raise
        process.returncode = os.waitstatus_to_exitcode(status)
    text = log.read_text()
    assert process.returncode == 0, text[-3000:]
    return text, usage.ru_utime + usage.ru_stime


def _reported(pattern: str, text: str) -> float:
    found = re.search(pattern, text)
    assert found is not None, f"{pattern!r} not in vllm bench serve's output:\n{text[-2000:]}"
    return float(found[1])


@pytest.fixture(scope="module")
def tokenizer() -> Path:
    plan = load_plan(REPO / "fixtures/plans/cpu-tiny.yaml")
    return base_model(plan, cache_root(REPO))


def test_client_cost_against_vllm_bench_serve(
    benchmark: Any, fake_endpoint: Endpoint, tokenizer: Path, tmp_path: Path
) -> None:
    events = REQUESTS * EVENTS
    vllm_out, vllm_cpu = run_measured(
        [
            sys.executable, "-c", VLLM_BENCH, "--backend", "openai", "--base-url", fake_endpoint.base_url,
            "--endpoint", "/v1/completions", "--model", "fake", "--tokenizer", str(tokenizer),
            "--dataset-name", "random", "--random-input-len", "8", "--random-output-len", str(EVENTS),
            "--num-prompts", str(REQUESTS), "--request-rate", "inf", "--max-concurrency", str(IN_FLIGHT),
            "--ignore-eos", "--disable-tqdm",
        ],
        tmp_path / "vllm.log",
    )  # fmt: skip
    assert _reported(r"Successful requests:\s+(\d+)", vllm_out) == REQUESTS, vllm_out[-2000:]
    vllm_rate = _reported(r"Request throughput \(req/s\):\s+([\d.]+)", vllm_out)

    result = tmp_path / "llmqual.json"

    def harness_run() -> tuple[str, float]:
        return run_measured(
            [
                sys.executable, "-m", "harness.cli", "bench", "dynamic", "--base-url", fake_endpoint.base_url,
                "--served-model-name", "fake", "--tokenizer", str(tokenizer), "--random-input-len", "8",
                "--random-output-len", str(EVENTS), "--request-rate", "inf", "--num-prompts", str(REQUESTS),
                "--max-concurrency", str(IN_FLIGHT), "--num-warmups", "0", "--max-p99-lag-ms", "1000",
                "--benchmark-csv", str(tmp_path / "llmqual.csv"), "--result-json", str(result),
            ],
            tmp_path / "llmqual.log",
        )  # fmt: skip

    _, harness_cpu = benchmark.pedantic(harness_run, rounds=1, iterations=1)
    (summary,) = json.loads(result.read_text())
    assert summary["completed"] == REQUESTS
    assert summary["total_output_tokens"] == REQUESTS * EVENTS
    harness_rate = summary["request_throughput"]
    numbers = {
        "llmqual_req_per_s": harness_rate,
        "vllm_bench_req_per_s": vllm_rate,
        "req_per_s_ratio": harness_rate / vllm_rate,
        "llmqual_cpu_us_per_event": harness_cpu / events * 1e6,
        "vllm_bench_cpu_us_per_event": vllm_cpu / events * 1e6,
        "cpu_per_event_ratio": vllm_cpu / harness_cpu,  # > 1: the harness spends less per event
    }
    benchmark.extra_info.update(numbers)
    print(
        f"\nllmqual {harness_rate:.0f} req/s vs vllm bench serve {vllm_rate:.0f} req/s "
        f"({numbers['req_per_s_ratio']:.2f}x); CPU per event {numbers['llmqual_cpu_us_per_event']:.1f} us vs "
        f"{numbers['vllm_bench_cpu_us_per_event']:.1f} us ({numbers['cpu_per_event_ratio']:.2f}x less)"
    )
