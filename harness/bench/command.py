"""`llmqual bench static|dynamic`: the benchmarks outside pytest, with the option names engineers already use.

    llmqual bench static --base-url URL --model NAME --tokenizer PATH --parallel-num 1 4 8 \\
        --prompt-tokens 1024 2048 --output-tokens 128 256 --epochs 5 --benchmark-csv F --result-json F
    llmqual bench dynamic --base-url URL --model NAME --tokenizer PATH --dataset F --dataset-type sharegpt \\
        --request-rate 1 2 4 --num-prompts 100 100 100 --max-tokens N --max-prompt-tokens N ...

Every case is written as soon as it finishes: a row in --benchmark-csv (AscendCloud layout unless
--csv-layout english) and the summaries so far in --result-json (a JSON list with one flat object per case, under
`vllm bench serve`'s field names). Exit status 1 when a case had failed requests or an invalid client.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from harness.bench.cases import BenchInputError, LoadSettings, StaticCase, dynamic_cases, static_cases
from harness.bench.execute import measure_dynamic, measure_static
from harness.load.datasets import load_dataset, select
from harness.load.samples import Sample
from harness.load.synthetic import prefix_samples, random_samples
from harness.load.tokens import Tokens
from harness.metrics.health import ClientLimits
from harness.metrics.serving import SLO
from harness.report.csv_layouts import Layout, append_row, columns
from harness.results.case import CaseResult, write_json
from harness.results.sink import case_line
from harness.runtime.affinity import placement_problem
from harness.server.endpoint import Endpoint, connect_endpoint


def _rate(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"a request rate must be positive or inf, got {text}")
    return value


def _goodput(items: list[str] | None) -> SLO:
    """vLLM's `--goodput ttft:500 tpot:50` syntax (milliseconds)."""
    limits: dict[str, float] = {}
    for item in items or []:
        name, _, value = item.partition(":")
        if name not in ("ttft", "tpot", "e2el") or not value:
            raise BenchInputError(f"--goodput takes KEY:MS with KEY one of ttft, tpot, e2el; got {item!r}")
        limits[f"{name}_ms"] = float(value)
    return SLO(**limits)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base-url", required=True, help="server URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("--model", default=None, help="model name in requests (default: the only one served)")
    parser.add_argument("--served-model-name", default=None, help="overrides --model as the name in requests")
    parser.add_argument("--tokenizer", required=True, help="tokenizer folder of the served model")
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--endpoint-type", choices=("completions", "chat"), default="completions")
    parser.add_argument("--benchmark-csv", type=Path, default=None, help="CSV to append one row per case to")
    parser.add_argument("--csv-layout", choices=("ascendcloud", "english"), default="ascendcloud")
    parser.add_argument("--result-json", type=Path, default=None, help="JSON list of per-case summaries")
    parser.add_argument("--enable-prefix-caching", action="store_true", help="prompts share a common prefix")
    parser.add_argument("--prefix-caching-num", type=int, default=0, help="shared prefix length in tokens")
    parser.add_argument("--use-spec-decode", action="store_true", help="report speculative-decoding acceptance")
    parser.add_argument("--num-speculative-tokens", type=int, default=None)
    parser.add_argument("--no-ignore-eos", dest="ignore_eos", action="store_false", help="let EOS end requests")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--request-timeout", type=float, default=300.0, help="no-progress timeout per request (s)")
    parser.add_argument("--case-deadline", type=float, default=3600.0, help="deadline of one case (s)")
    parser.add_argument("--max-p99-lag-ms", type=float, default=50.0, help="client schedule-lag limit")
    protocol = parser.add_argument_group("measurement protocol (docs/measurement.md)")
    protocol.add_argument("--num-warmups", type=int, default=16, help="requests before each case, not measured")
    protocol.add_argument("--min-requests", type=int, default=0, help="a repeat sends at least this many requests")
    protocol.add_argument("--min-seconds", type=float, default=0.0, help="a repeat lasts at least this long")
    protocol.add_argument("--repeats", type=int, default=1, help="measurements of each case (fresh prompts each)")
    protocol.add_argument(
        "--client-cpus", type=int, nargs="+", default=None, help="cores the client runs on while it measures"
    )


def add_parser(commands: Any) -> None:
    bench = commands.add_parser("bench", help="serving benchmarks against a running server")
    kinds = bench.add_subparsers(dest="bench_command", required=True)

    static = kinds.add_parser("static", help="fixed concurrency, exact lengths (closed loop)")
    _common(static)
    static.add_argument("--parallel-num", type=int, nargs="+", required=True)
    static.add_argument("--prompt-tokens", type=int, nargs="+", required=True)
    static.add_argument("--output-tokens", type=int, nargs="+", required=True)
    static.add_argument("--epochs", type=int, default=5)
    static.set_defaults(run=_cmd_static)

    dynamic = kinds.add_parser("dynamic", help="Poisson arrivals over a dataset (open loop)")
    _common(dynamic)
    dynamic.add_argument("--dataset", type=Path, default=None, help="dataset file (not needed for random)")
    dynamic.add_argument(
        "--dataset-type", choices=("random", "sharegpt", "alpaca", "custom", "human-eval"), default="random"
    )
    dynamic.add_argument("--request-rate", type=_rate, nargs="+", required=True)
    dynamic.add_argument("--num-prompts", type=int, nargs="+", required=True)
    dynamic.add_argument("--max-tokens", type=int, default=None, help="drop samples with longer answers")
    dynamic.add_argument("--max-prompt-tokens", type=int, default=None, help="drop samples with longer prompts")
    dynamic.add_argument("--fixed-output-len", type=int, default=None, help="ask every request for N tokens")
    dynamic.add_argument("--random-input-len", type=int, default=1024)
    dynamic.add_argument("--random-output-len", type=int, default=128)
    dynamic.add_argument("--burstiness", type=float, default=1.0)
    dynamic.add_argument("--max-concurrency", type=int, default=None)
    dynamic.add_argument("--goodput", nargs="+", default=None, help="SLOs as KEY:MS (ttft, tpot, e2el)")
    dynamic.set_defaults(run=_cmd_dynamic)


def _settings(args: argparse.Namespace) -> LoadSettings:
    problem = placement_problem(args.client_cpus)
    if problem:
        raise BenchInputError(f"--client-cpus: {problem}; list cores from that set or drop the option")
    return LoadSettings(
        route=args.endpoint_type,
        ignore_eos=args.ignore_eos,
        seed=args.seed,
        request_timeout_s=args.request_timeout,
        case_deadline_s=args.case_deadline,
        limits=ClientLimits(max_p99_lag_ms=args.max_p99_lag_ms),
        save_records=False,
        warmup_requests=args.num_warmups,
        min_requests=args.min_requests,
        min_seconds=args.min_seconds,
        client_cpus=tuple(args.client_cpus) if args.client_cpus else None,
    )


def _connect(args: argparse.Namespace) -> Endpoint:
    return connect_endpoint(args.base_url, args.api_key, args.served_model_name or args.model)


class _Outputs:
    """Writes each case's CSV row and the growing --result-json as cases finish."""

    def __init__(self, args: argparse.Namespace, kind: str) -> None:
        self.args, self.kind = args, kind
        self.summaries: list[dict[str, Any]] = []
        self.failed = False

    def _document(self, result: CaseResult) -> dict[str, Any]:
        document = result.document()
        if self.args.use_spec_decode:
            document["config"]["num_speculative_tokens"] = self.args.num_speculative_tokens
        return document

    @staticmethod
    def _flat(document: dict[str, Any]) -> dict[str, Any]:
        flat = {**document["config"], **document["metrics"], **document["checks"].get("server", {})}
        flat.update(valid=document["valid"], invalid_reasons=document["invalid_reasons"])
        for key in ("partial", "repeats"):  # every repeat's metrics, when --repeats measured more than one
            if document.get(key):
                flat[key] = document[key]
        return flat

    def progress(self, result: CaseResult) -> None:
        """A case between repeats: into --result-json at once (marked partial), so a stopped run keeps it."""
        if self.args.result_json is not None:
            write_json(self.args.result_json, [*self.summaries, self._flat(self._document(result))])

    def add(self, result: CaseResult) -> None:
        document = self._document(result)
        print(case_line(document), flush=True)
        layout: Layout = self.args.csv_layout
        if self.args.benchmark_csv is not None:
            append_row(self.args.benchmark_csv, columns(self.kind, self.args.use_spec_decode), layout, document)
        self.summaries.append(self._flat(document))
        if self.args.result_json is not None:
            write_json(self.args.result_json, self.summaries)
        self.failed |= bool(document["metrics"]["failed"]) or not document["valid"]


def _cmd_static(args: argparse.Namespace) -> int:
    cases = static_cases(args.parallel_num, args.prompt_tokens, args.output_tokens, args.epochs)
    settings = _settings(args)
    tokens = Tokens.load(args.tokenizer)
    endpoint = _connect(args)
    outputs = _Outputs(args, "static")
    for case in cases:
        workload = None
        if args.enable_prefix_caching:

            def workload(rng: np.random.Generator, count: int, case: StaticCase = case) -> list[Sample]:
                return prefix_samples(
                    tokens, count, args.prefix_caching_num, case.prompt_tokens, case.output_tokens, rng
                )

        outputs.add(measure_static(endpoint, tokens, case, settings, args.repeats, workload, progress=outputs.progress))
    return 1 if outputs.failed else 0


def _cmd_dynamic(args: argparse.Namespace) -> int:
    slo = _goodput(args.goodput)
    cases = dynamic_cases(args.request_rate, args.num_prompts, args.burstiness, args.max_concurrency, slo)
    if args.dataset_type != "random" and args.dataset is None:
        raise BenchInputError(f"--dataset-type {args.dataset_type} needs --dataset FILE")
    settings = _settings(args)
    tokens = Tokens.load(args.tokenizer)
    if args.dataset_type == "random":
        label = f"random-{args.random_input_len}-{args.random_output_len}"
        rng = np.random.default_rng(args.seed)
        count = (args.repeats + 1) * sum(max(n, args.min_requests) for n in args.num_prompts)
        pool = random_samples(tokens, count, args.random_input_len, args.random_output_len, rng)
    else:
        label, pool = args.dataset.name, load_dataset(args.dataset, args.dataset_type, tokens)
    # The filters are checked before the first request is sent; each measurement takes its own slice.
    records = select(pool, len(pool), args.max_prompt_tokens, args.max_tokens, args.fixed_output_len)
    endpoint = _connect(args)
    outputs = _Outputs(args, "dynamic")
    for index, case in enumerate(cases):
        result = measure_dynamic(
            endpoint, tokens, case, settings, args.repeats, records, label, index, outputs.progress
        )
        outputs.add(result)
    return 1 if outputs.failed else 0
