"""The client's own cost, side by side with `vllm bench serve`, in one run, at each rate.

Both clients, as their own processes pinned to core 0, run the same workload against the instant fake on core 1:
random prompts of 8 tokens, 32 streamed events per request, at 50, 300 and 1,000 requests per second (Poisson
arrivals, as both draw them) and all at once (rate inf, 64 in flight).

CPU per event is measured over the steady state only: the benchmark watches the fake's count of requests received
(GET /stats) and reads the client process's CPU time (user + system of all its threads, /proc/<pid>/stat) when the
count passes 15% of the run's requests and again at 85%; the difference over the events of the requests received
in between. Start-up, prompt making and the report at the end are outside the window, for both clients alike.
At rate inf each client's own report of the requests per second it held is its ceiling. The harness runs with
`--max-p99-lag-ms 1` and its p99 schedule lag is reported.

Figures go to extra_info and are printed with the ratios; speed is never asserted. Both runs must complete every
request, and the window must hold a tenth of them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.config.plan import load_plan
from harness.model.resolve import base_model
from harness.paths import cache_root
from harness.server.endpoint import Endpoint
from tests.integration.procs import REPO, VLLM_BENCH

EVENTS = 32
IN_FLIGHT = 64  # at rate inf; paced runs have room for 256
CLIENT_CPU = 0
SECONDS = {"50": 16, "300": 8, "1000": 6}  # of arrivals per paced run: the 50 req/s window needs a few CPU ticks
INF_REQUESTS = 6000
WINDOW = (0.15, 0.85)  # of the run's requests received by the fake


def _pinned() -> None:  # pragma: no cover - runs in the child between fork and exec
    os.sched_setaffinity(0, {CLIENT_CPU})


@dataclass(frozen=True)
class Window:
    """What a client process spent while the fake received `requests` requests in the steady state."""

    requests: int
    cpu_s: float

    @property
    def us_per_event(self) -> float:
        return self.cpu_s / (self.requests * EVENTS) * 1e6


def _cpu_s(pid: int) -> float:
    """User + system CPU of the process, all its threads (including those that ended), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _received(stats_url: str) -> int:
    with urllib.request.urlopen(stats_url, timeout=5) as answer:
        return int(json.load(answer)["requests"])


def run_windowed(
    argv: list[str], log: Path, total: int, stats_url: str, accepted: tuple[int, ...] = (0,)
) -> tuple[str, Window]:
    """Run `argv` pinned to the client's core; its output and the CPU it spent in the steady-state window. An exit
    status outside `accepted` fails the test; so does a run that lasts past its deadline (it is killed)."""
    before = _received(stats_url)
    marks = [before + round(share * total) for share in WINDOW]
    taken: list[tuple[int, float]] = []
    deadline = time.monotonic() + 300
    with log.open("w") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, preexec_fn=_pinned)
        try:
            while process.poll() is None:
                assert time.monotonic() < deadline, f"{argv[:4]} ran past 300 s"
                if len(taken) < len(marks) and (count := _received(stats_url)) >= marks[len(taken)]:
                    taken.append((count, _cpu_s(process.pid)))
                time.sleep(0.01)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
    text = log.read_text()
    assert process.returncode in accepted, text[-3000:]
    assert len(taken) == 2, f"the run ended before its window closed ({taken})"
    (first, cpu_first), (last, cpu_last) = taken
    assert last - first >= total // 10, f"a window of {last - first} requests is too short to measure"
    return text, Window(last - first, cpu_last - cpu_first)


def _reported(pattern: str, text: str) -> float:
    found = re.search(pattern, text)
    assert found is not None, f"{pattern!r} not in vllm bench serve's output:\n{text[-2000:]}"
    return float(found[1])


@pytest.fixture(scope="module")
def tokenizer() -> Path:
    plan = load_plan(REPO / "fixtures/plans/cpu-tiny.yaml")
    return base_model(plan, cache_root(REPO))


def vllm_bench_argv(url: str, tokenizer: Path, rate: str, requests: int, in_flight: int) -> list[str]:
    return [
        sys.executable, "-c", VLLM_BENCH, "--backend", "openai", "--base-url", url, "--endpoint", "/v1/completions",
        "--model", "fake", "--tokenizer", str(tokenizer), "--dataset-name", "random", "--random-input-len", "8",
        "--random-output-len", str(EVENTS), "--num-prompts", str(requests), "--request-rate", rate,
        "--max-concurrency", str(in_flight), "--ignore-eos", "--disable-tqdm",
    ]  # fmt: skip


def harness_argv(url: str, tokenizer: Path, rate: str, requests: int, in_flight: int, out: Path) -> list[str]:
    out.with_suffix(".csv").unlink(missing_ok=True)
    return [
        sys.executable, "-m", "harness.cli", "bench", "dynamic", "--base-url", url, "--served-model-name", "fake",
        "--tokenizer", str(tokenizer), "--random-input-len", "8", "--random-output-len", str(EVENTS),
        "--request-rate", rate, "--num-prompts", str(requests), "--max-concurrency", str(in_flight),
        "--num-warmups", "0", "--max-p99-lag-ms", "1", "--benchmark-csv", str(out.with_suffix(".csv")),
        "--result-json", str(out),
    ]  # fmt: skip


@pytest.mark.parametrize("rate", ["50", "300", "1000", "inf"])
def test_client_cost_beside_vllm_bench_serve(
    benchmark: Any, fake_endpoint: Endpoint, tokenizer: Path, tmp_path: Path, rate: str
) -> None:
    url = fake_endpoint.base_url
    stats = url.rstrip("/") + "/stats"
    requests = INF_REQUESTS if rate == "inf" else int(rate) * SECONDS[rate]
    in_flight = IN_FLIGHT if rate == "inf" else 256

    vllm_out, vllm = run_windowed(
        vllm_bench_argv(url, tokenizer, rate, requests, in_flight), tmp_path / "vllm.log", requests, stats
    )
    assert _reported(r"Successful requests:\s+(\d+)", vllm_out) == requests, vllm_out[-2000:]
    result = tmp_path / "llmqual.json"

    def harness_run() -> Window:
        # Exit 1 also when the client's self-check fails (lag over 1 ms): reported below, never a failure here.
        argv = harness_argv(url, tokenizer, rate, requests, in_flight, result)
        return run_windowed(argv, tmp_path / "llmqual.log", requests, stats, accepted=(0, 1))[1]

    harness = benchmark.pedantic(harness_run, rounds=1, iterations=1)
    (summary,) = json.loads(result.read_text())
    assert summary["completed"] == requests
    assert summary["failed"] == 0
    assert summary["total_output_tokens"] == requests * EVENTS
    numbers: dict[str, Any] = {
        "rate": rate,
        "window_requests": harness.requests,
        "llmqual_cpu_us_per_event": harness.us_per_event,
        "vllm_bench_cpu_us_per_event": vllm.us_per_event,
        "cpu_per_event_ratio": vllm.us_per_event / harness.us_per_event if harness.cpu_s > 0 else float("inf"),
        "llmqual_p99_schedule_lag_ms": None if rate == "inf" else summary["client_p99_schedule_lag_ms"],
    }
    line = (
        f"\n{rate} req/s: CPU per event llmqual {harness.us_per_event:.1f} us vs vllm bench serve "
        f"{vllm.us_per_event:.1f} us ({numbers['cpu_per_event_ratio']:.2f}x less)"
    )
    if rate == "inf":
        vllm_rate = _reported(r"Request throughput \(req/s\):\s+([\d.]+)", vllm_out)
        numbers.update(
            llmqual_req_per_s=summary["request_throughput"],
            vllm_bench_req_per_s=vllm_rate,
            req_per_s_ratio=summary["request_throughput"] / vllm_rate,
        )
        ceiling = f"{summary['request_throughput']:.0f} vs {vllm_rate:.0f} req/s"
        line += f"; ceiling {ceiling} ({numbers['req_per_s_ratio']:.2f}x)"
    else:
        line += f"; llmqual p99 schedule lag {numbers['llmqual_p99_schedule_lag_ms']:.2f} ms"
    benchmark.extra_info.update(numbers)
    print(line)
