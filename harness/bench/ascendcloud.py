"""The AscendCloud benchmark tools' command lines on `llmqual bench`: where their options point, the workloads
their dataset types make, and the console lines they print.

The ModelArts guides run `benchmark_parallel.py` (closed loop, fixed lengths) and `benchmark_serving.py` (Poisson
arrivals over a dataset) with `--backend --host --port` or a full `--url`. llmqual accepts those options as
written (docs/ascendcloud.md has the table) and measures with its own client and protocol; what differs from the
scripts is said there and, where it changes a number, here.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from harness.bench.cases import BenchInputError, StaticCase
from harness.client.openai import Route
from harness.load.datasets import DatasetError
from harness.load.samples import Sample

# --backend values that reach a vLLM server: the scripts' `vllm` backend posted to the demo server's /generate,
# which vLLM no longer ships (0.32 has only the OpenAI server), so it is served through /v1/completions too.
BACKENDS: dict[str, Route] = {"openai": "completions", "vllm": "completions", "openai-chat": "chat"}
ROUTE_PATHS: dict[str, Route] = {"/v1/completions": "completions", "/v1/chat/completions": "chat"}


def backend(text: str) -> str:
    """argparse type of --backend: the scripts' other back ends (mindspore, tgi, trt, base) are not vLLM servers."""
    if text not in BACKENDS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a back end llmqual measures (it speaks vLLM's OpenAI API); use one of "
            + ", ".join(BACKENDS)
        )
    return text


def truthy(text: str) -> bool:
    """--enable-prefix-caching's value (the scripts take `--enable-prefix-caching True`; bare works too)."""
    value = text.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {text!r}")


@dataclass(frozen=True)
class Target:
    """Where requests go: the server's base URL (no /v1) and the route."""

    base_url: str
    route: Route


def target(args: argparse.Namespace, default_route: Route) -> Target:
    """The server from --base-url, else --url (a full completions URL, as the scripts take it), else --host/--port.

    A --url whose path is not an OpenAI route is refused: llmqual also reads the server's /metrics and /v1/models
    beside the route, so it needs to know where the server's root is.
    """
    route = BACKENDS[args.backend] if args.backend else default_route
    if args.base_url:
        return Target(args.base_url.rstrip("/"), route)
    if args.url:
        parts = urlsplit(args.url)
        path = parts.path.rstrip("/")
        for suffix, url_route in ROUTE_PATHS.items():
            if path.endswith(suffix):
                root = urlunsplit(parts._replace(path=path[: -len(suffix)], query="", fragment=""))
                return Target(root, url_route)
        if path in ("", "/v1") or path.endswith("/v1"):
            return Target(urlunsplit(parts._replace(path=path.removesuffix("/v1"))), route)
        raise BenchInputError(
            f"--url {args.url}: expected a URL ending in /v1/completions or /v1/chat/completions (or the server's "
            "root); for a plain server give --host and --port instead"
        )
    return Target(f"http://{args.host}:{args.port}", route)


def static_dataset_samples(
    samples: Sequence[Sample], count: int, output_tokens: int | None, rng: np.random.Generator, kind: str
) -> list[Sample]:
    """`count` requests of a sharegpt or human-eval file for a static case, as benchmark_parallel.py samples them:
    the prompts in shuffled order with their own lengths (sharegpt keeps prompts of 4-1024 tokens whose prompt and
    answer fit 2048), asking for `output_tokens` each, or for the answer's length when it is None
    (--use-real-dataset-output-tokens). Reused from the top when the file is shorter than the case."""
    pool = []
    for sample in samples:
        out = sample.output_len if output_tokens is None else output_tokens
        if kind == "sharegpt" and (
            sample.prompt_len < 4 or out < 4 or sample.prompt_len > 1024 or sample.prompt_len + out > 2048
        ):
            continue
        if sample.prompt_len > 0 and out > 0:
            pool.append(Sample(sample.prompt, sample.prompt_len, out))
    if not pool:
        raise DatasetError(f"no {kind} record passes benchmark_parallel.py's length filters for this case")
    order = rng.permutation(len(pool))
    return [pool[order[i % len(pool)]] for i in range(count)]


def serving_select(samples: Sequence[Sample], max_tokens: int, max_prompt_tokens: int) -> list[Sample]:
    """benchmark_serving.py's filters: prompts and answers of at least 4 tokens, prompts of at most
    --max-prompt-tokens, and an answer cut so that prompt + answer stay within --max-tokens (dropped if nothing is
    left)."""
    kept = []
    for sample in samples:
        if sample.prompt_len < 4 or sample.output_len < 4 or sample.prompt_len > max_prompt_tokens:
            continue
        output_len = min(sample.output_len, max_tokens - sample.prompt_len)
        if output_len > 0:
            kept.append(Sample(sample.prompt, sample.prompt_len, output_len, sample.images))
    if not kept:
        raise DatasetError(
            f"no sample passes --max-prompt-tokens {max_prompt_tokens} and --max-tokens {max_tokens} (prompt + "
            "answer); raise them or use a dataset of shorter records"
        )
    return kept


class EpochBar:
    """benchmark_parallel.py's progress bar, one per measured run of a case: epochs (waves of `parallel`
    requests) done of the run's epochs, redrawn on one stderr line. A context manager: the line is ended on every
    exit."""

    WIDTH = 30

    def __init__(self, case: StaticCase, out: TextIO | None = None) -> None:
        self.parallel = case.parallel
        self.out = out or sys.stderr
        self.total = 0
        self.shown = -1
        self.open = False

    def __enter__(self) -> EpochBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self._end()

    def _end(self) -> None:
        if self.open:
            self.out.write("\n")
            self.out.flush()
            self.open = False

    def update(self, case_id: str, done: int, total: int) -> None:
        epochs = max(1, total // self.parallel)
        if total != self.total or done // self.parallel < self.shown:  # a new run of the case (warm-up, repeat)
            self._end()
            self.total, self.shown = total, -1
        epoch = min(done // self.parallel, epochs)
        if epoch == self.shown:
            return
        self.shown, self.open = epoch, True
        filled = self.WIDTH * epoch // epochs
        self.out.write(
            f"\repoch: {100 * epoch // epochs:3d}%|{'#' * filled}{' ' * (self.WIDTH - filled)}| {epoch}/{epochs}"
        )
        self.out.flush()
        if done >= total:
            self._end()


def _ms(value: Any) -> str:
    return "missing" if value is None else f"{value:.4f} ms"


def static_lines(document: dict[str, Any]) -> list[str]:
    """A static case's summary as benchmark_parallel.py logs it, under the CSV's column names."""
    m = document["metrics"]
    lines = [
        f"所有请求耗时: {m['duration']:.4f} s",
        f"请求吞吐: {m['request_throughput']:.4f} requests/s",
        f"输出tokens总吞吐: {m['output_throughput']:.4f} tokens/s",
        f"首tokens时延TP90: {_ms(m.get('p90_ttft_ms'))}",
        f"首tokens时延TP99: {_ms(m.get('p99_ttft_ms'))}",
        f"最大首tokens时延: {_ms(m.get('max_ttft_ms'))}",
        f"平均首tokens时延: {_ms(m.get('mean_ttft_ms'))}",
        f"增量时延TP90: {_ms(m.get('p90_itl_ms'))}",
        f"增量时延TP99: {_ms(m.get('p99_itl_ms'))}",
        f"最大增量时延: {_ms(m.get('max_itl_ms'))}",
        f"平均增量时延: {_ms(m.get('mean_itl_ms'))}",
    ]
    for label, key in (
        ("投机接受率TP90", "p90_spec_acceptance_rate"),
        ("投机接受率TP99", "p99_spec_acceptance_rate"),
        ("投机最大接受率", "max_spec_acceptance_rate"),
        ("投机最小接受率", "min_spec_acceptance_rate"),
        ("投机平均接受率", "mean_spec_acceptance_rate"),
    ):
        if m.get(key) is not None:
            lines.append(f"{label}: {m[key]:.4f}")
    return lines


def dynamic_lines(document: dict[str, Any]) -> list[str]:
    """A dynamic case's summary as benchmark_serving.py logs it."""
    m = document["metrics"]
    done = m["completed"] or math.nan
    return [
        f"所有请求耗时: {m['duration']:.2f} s",
        f"请求吞吐: {m['request_throughput']:.3f} requests/s",
        f"平均请求时延: {(m.get('mean_e2el_ms') or math.nan) / 1000:.3f} s",
        f"平均每输出token时延: {m.get('mean_tpot_ms') or math.nan:.2f} ms",
        f"平均输出tokens吞吐: {m.get('mean_request_output_throughput') or math.nan:.2f} tokens/s",
        f"平均首tokens时延: {m.get('mean_ttft_ms') or math.nan:.2f} ms",
        f"输入平均长度: {m['total_input_tokens'] / done:.1f} tokens",
        f"输出平均长度: {m['total_output_tokens'] / done:.1f} tokens",
        f"输出总tokens: {m['total_output_tokens']} tokens",
        f"输出tokens总吞吐: {m['output_throughput']:.3f} tokens/s",
    ]


def token_check_lines(document: dict[str, Any]) -> list[str]:
    """The token check the scripts print (they log each request that returned fewer tokens than it asked for):
    here the case's totals and, when requests came back short or long, how many."""
    audit = document["checks"].get("token_audit") or {}
    if not audit:
        return []
    asked, served = audit.get("requested_output_tokens"), audit.get("server_output_tokens")
    line = (
        f"token check: {audit.get('requests_audited')} requests asked for {asked} output tokens, the server "
        f"counted {served} (its usage.completion_tokens); re-tokenising the text it streamed gives "
        f"{audit.get('retokenised_output_tokens')} (a cross-check only: a tokenizer can merge into fewer tokens "
        "what the model generated one by one)"
    )
    if audit.get("returned_min") is not None:
        line += f"; per request {audit['returned_min']}-{audit['returned_max']}"
    lines = [line]
    mismatches = audit.get("output_length_mismatches") or 0
    if mismatches:
        lines.append(f"output_tokens != output_len in {mismatches} requests ({audit.get('problems')})")
    return lines
