"""`llmqual bench static|dynamic`: the benchmarks outside pytest, taking the AscendCloud benchmark tools' command
lines as written (docs/ascendcloud.md maps every option).

    llmqual bench static --backend openai --host 127.0.0.1 --port 8080 --tokenizer PATH --epochs 5 \\
        --parallel-num 1 4 8 --prompt-tokens 1024 2048 --output-tokens 128 256 --benchmark-csv F
    llmqual bench dynamic --backend openai --host 127.0.0.1 --port 8080 --tokenizer PATH --dataset F \\
        --dataset-type sharegpt --request-rate 1 2 4 --num-prompts 100 100 100 --max-tokens N --max-prompt-tokens N

`--base-url URL` may replace --backend/--host/--port. Every case is written as soon as it finishes: a row in
--benchmark-csv (AscendCloud layout unless --csv-layout english; re-sorted at the end as the scripts sort it), the
summaries so far in --result-json (a JSON list of flat objects), and with --save-result a `vllm bench serve` result
file per case. Exit status 1 when a case had failed requests or an invalid client.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from harness.bench import ascendcloud, options, replay_command
from harness.bench.cases import BenchInputError, StaticCase, dynamic_cases, static_cases
from harness.bench.measure import measure_dynamic, measure_static
from harness.bench.outputs import CaseOutputs
from harness.bench.protocol import CALIBRATIONS
from harness.capacity import sla_command
from harness.config.suites import LoadSpec, rate_problem
from harness.errors import EndpointError
from harness.load.datasets import LOADERS, DatasetError, load_dataset, select
from harness.load.samples import Sample
from harness.load.synthetic import prefix_samples, random_samples
from harness.load.tokens import Tokens
from harness.server.endpoint import Endpoint, connect_endpoint, served_models

LOAD = LoadSpec()  # the defaults of a plan's suites.load: the options' defaults too


def _help(field: str) -> str | None:
    return LoadSpec.model_fields[field].description


def _rate(text: str) -> float:
    value = float(text)
    problem = rate_problem(value)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return value


def _connection(parser: argparse.ArgumentParser, backend_default: str | None) -> None:
    where = parser.add_argument_group("server (the AscendCloud tools' options, or --base-url)")
    where.add_argument("--backend", type=ascendcloud.backend, default=backend_default, help="openai, vllm, openai-chat")
    where.add_argument("--host", default="127.0.0.1")
    where.add_argument("--port", type=int, default=9288)
    where.add_argument("--url", default=None, help="full URL of the completions route (overrides --host/--port)")
    where.add_argument("--base-url", default=None, help="server root, e.g. http://127.0.0.1:8000 (overrides all)")
    where.add_argument("--app-code", default=None, help="API Gateway app code, sent as X-Apig-AppCode")
    where.add_argument("--api-key", default=None)
    where.add_argument("--model", default=None, help="model name in requests")
    where.add_argument("--served-model-name", default=None, help="overrides --model (default: the tokenizer path)")
    where.add_argument("--endpoint-type", choices=("completions", "chat"), default="completions")


def _common(parser: argparse.ArgumentParser, csv_default: str) -> None:
    parser.add_argument("--tokenizer", required=True, help="tokenizer folder of the served model")
    parser.add_argument("--benchmark-csv", type=Path, default=Path(csv_default), help="CSV, one row per case")
    parser.add_argument("--csv-layout", choices=("ascendcloud", "english"), default="ascendcloud")
    parser.add_argument("--result-json", type=Path, default=None, help="JSON list of per-case summaries")
    parser.add_argument("--num-scheduler-steps", type=int, default=1, help="recorded; tokens are counted from usage")
    parser.add_argument("--no-ignore-eos", dest="ignore_eos", action="store_false", help="let EOS end requests")
    parser.add_argument("--seed", type=int, default=LOAD.seed)
    parser.add_argument(
        "--request-timeout", type=float, default=LOAD.request_timeout_s, help=_help("request_timeout_s")
    )
    parser.add_argument("--case-deadline", type=float, default=LOAD.case_deadline_s, help=_help("case_deadline_s"))
    parser.add_argument("--max-p99-lag-ms", type=float, default=LOAD.max_p99_lag_ms, help=_help("max_p99_lag_ms"))
    parser.add_argument(
        "--min-rate-fraction", type=float, default=LOAD.min_rate_fraction, help=_help("min_rate_fraction")
    )
    parser.add_argument(
        "--max-ttft-overhead", type=float, default=LOAD.max_ttft_overhead, help=_help("max_ttft_overhead")
    )
    protocol = parser.add_argument_group("measurement protocol (docs/measurement.md)")
    protocol.add_argument("--num-warmups", type=int, default=LOAD.warmup_requests, help=_help("warmup_requests"))
    protocol.add_argument("--min-requests", type=int, default=LOAD.min_requests, help=_help("min_requests"))
    protocol.add_argument("--min-seconds", type=float, default=LOAD.min_seconds, help=_help("min_seconds"))
    protocol.add_argument("--repeats", type=int, default=1, help="measurements of each case (fresh prompts each)")
    protocol.add_argument("--client-cpus", type=int, nargs="+", default=None, help=_help("client_cpus"))
    protocol.add_argument("--client-workers", type=int, default=LOAD.client_workers, help=_help("client_workers"))
    vllm = parser.add_argument_group("vLLM result files (as `vllm bench serve --save-result` writes them)")
    vllm.add_argument("--save-result", action="store_true", help="one vLLM result JSON per case")
    vllm.add_argument("--save-detailed", action="store_true", help="with the per-request arrays")
    vllm.add_argument("--result-dir", type=Path, default=None)
    vllm.add_argument("--result-filename", default=None, help="one file; several cases are appended as lines")
    vllm.add_argument("--label", default=None, help="the results' label (default: the backend)")
    vllm.add_argument("--metadata", nargs="+", default=None, help="KEY=VALUE pairs recorded in the results")
    vllm.add_argument("--percentile-metrics", default="ttft,tpot,itl", help="of ttft, tpot, itl, e2el")
    vllm.add_argument("--metric-percentiles", default="99", help="comma-separated, e.g. 50,90,99")


def add_parser(commands: Any) -> None:
    bench = commands.add_parser("bench", help="serving benchmarks against a running server")
    kinds = bench.add_subparsers(dest="bench_command", required=True)

    static = kinds.add_parser("static", help="fixed concurrency, exact lengths (benchmark_parallel.py)")
    _connection(static, "openai")
    _common(static, "benchmark_parallel.csv")
    static.add_argument("--parallel-num", type=int, nargs="+", default=[1, 4, 8])
    static.add_argument("--prompt-tokens", type=int, nargs="+", default=[512, 1024, 2048])
    static.add_argument("--output-tokens", type=int, nargs="+", default=[256, 256, 256])
    static.add_argument("--epochs", type=int, default=10)
    static.add_argument(
        "--enable-prefix-caching", type=ascendcloud.truthy, nargs="?", const=True, default=False,
        help="prompts share a common prefix of --prefix-caching-num tokens",
    )  # fmt: skip
    static.add_argument("--prefix-caching-num", type=int, default=0, help="shared prefix length in tokens")
    static.add_argument("--use-spec-decode", action="store_true", help="report speculative-decoding acceptance")
    static.add_argument(
        "--num-speculative-tokens", type=int, default=-1, help="the server's k; >= 0 computes acceptance per request"
    )
    static.add_argument("--dataset-type", choices=("random", "sharegpt", "human-eval"), default="random")
    static.add_argument("--dataset-path", type=Path, default=None)
    static.add_argument("--use-real-dataset-output-tokens", action="store_true", help="ask for the answers' lengths")
    static.set_defaults(run=_cmd_static)

    dynamic = kinds.add_parser("dynamic", help="Poisson arrivals over a dataset (benchmark_serving.py)")
    _connection(dynamic, None)
    _common(dynamic, "benchmark_serving.csv")
    dynamic.add_argument("--dataset", type=Path, default=None, help="dataset file (not needed for random)")
    dynamic.add_argument("--dataset-type", choices=("random", *LOADERS), default="random")
    dynamic.add_argument("--request-rate", type=_rate, nargs="+", required=True)
    dynamic.add_argument("--num-prompts", type=int, nargs="+", required=True)
    dynamic.add_argument(
        "--max-tokens", type=int, default=1024, help="a dataset request's prompt + answer, answer cut to fit"
    )
    dynamic.add_argument("--max-prompt-tokens", type=int, default=900, help="drop dataset prompts longer than this")
    dynamic.add_argument("--fixed-output-len", type=int, default=None, help="ask every request for N tokens")
    dynamic.add_argument("--random-input-len", type=int, default=1024)
    dynamic.add_argument("--random-output-len", type=int, default=128)
    dynamic.add_argument("--burstiness", type=float, default=1.0)
    dynamic.add_argument("--max-concurrency", type=int, default=None)
    dynamic.add_argument("--goodput", nargs="+", default=None, help="SLOs as KEY:MS (ttft, tpot, e2el)")
    dynamic.set_defaults(run=_cmd_dynamic)
    sla_command.add_parser(kinds)
    replay_command.add_parser(kinds)


def _connect(args: argparse.Namespace, where: ascendcloud.Target) -> Endpoint:
    """The server, and the model name requests carry: --served-model-name, --model, else the tokenizer path as the
    scripts send it, else (when the server does not serve that name) the one model it serves, said on stderr."""
    named = args.served_model_name or args.model
    if named is None:
        probe = Endpoint(where.base_url, "", args.api_key, app_code=args.app_code)
        try:
            served = served_models(where.base_url, probe.headers())
        except OSError:
            served = {}  # connect_endpoint says what is wrong
        if args.tokenizer in served or not served:
            named = args.tokenizer
        elif len(served) == 1:
            named = next(iter(served))
            print(f"model name: {named} (the server does not serve {args.tokenizer!r})", file=sys.stderr)
    try:
        return connect_endpoint(where.base_url, args.api_key, named, args.app_code)
    except EndpointError as exc:
        if named == args.tokenizer:
            raise EndpointError(f"{exc}; name the served model with --served-model-name") from exc
        raise


def _static_workload(args: argparse.Namespace, tokens: Tokens, case: StaticCase, pool: list[Sample] | None) -> Any:
    if pool is not None:
        output = None if args.use_real_dataset_output_tokens else case.output_tokens

        def from_dataset(rng: np.random.Generator, count: int) -> list[Sample]:
            return ascendcloud.static_dataset_samples(pool, count, output, rng, args.dataset_type)

        return from_dataset
    if args.enable_prefix_caching:

        def with_prefix(rng: np.random.Generator, count: int) -> list[Sample]:
            return prefix_samples(tokens, count, args.prefix_caching_num, case.prompt_tokens, case.output_tokens, rng)

        return with_prefix
    return None


def _cmd_static(args: argparse.Namespace) -> int:
    cases = static_cases(args.parallel_num, args.prompt_tokens, args.output_tokens, args.epochs)
    options.check_static(args)
    options.check_outputs(args)
    where = ascendcloud.target(args, args.endpoint_type)
    settings = options.settings(args, where.route)
    tokens = Tokens.load(args.tokenizer)
    pool = None
    if args.dataset_type != "random":
        pool = load_dataset(args.dataset_path, args.dataset_type, tokens)
        print("With a sharegpt or human-eval dataset the prompts keep their own lengths: --prompt-tokens is ignored.")
    endpoint = _connect(args, where)
    outputs = CaseOutputs(args, "static", args.backend)
    try:
        for case in cases:
            workload = _static_workload(args, tokens, case, pool)
            with ascendcloud.EpochBar(case) as bar:
                progress_settings = settings.with_progress(bar.update)
                result = measure_static(
                    endpoint, tokens, case, progress_settings, args.repeats, workload, progress=outputs.progress
                )
            outputs.add(result)
    finally:
        outputs.finish()
    return 1 if outputs.failed else 0


def _cmd_dynamic(args: argparse.Namespace) -> int:
    slo = options.goodput(args.goodput)
    cases = dynamic_cases(args.request_rate, args.num_prompts, args.burstiness, args.max_concurrency, slo)
    if args.dataset_type != "random" and args.dataset is None:
        raise BenchInputError(f"--dataset-type {args.dataset_type} needs --dataset FILE")
    options.check_outputs(args)
    where = ascendcloud.target(args, args.endpoint_type)
    settings = options.settings(args, where.route)
    tokens = Tokens.load(args.tokenizer)
    if args.dataset_type == "random":
        label = f"random-{args.random_input_len}-{args.random_output_len}"
        rng = np.random.default_rng(args.seed)
        # Every case takes disjoint slices: its warm-up's, each calibration window's, one per repeat (the protocol).
        slots = 1 + CALIBRATIONS + args.repeats
        count = slots * sum(max(n, args.min_requests) for n in args.num_prompts)
        pool = random_samples(tokens, count, args.random_input_len, args.random_output_len, rng)
        records = select(pool, len(pool), fixed_output_len=args.fixed_output_len)
    else:
        label, pool = args.dataset_type, load_dataset(args.dataset, args.dataset_type, tokens)
        if args.fixed_output_len is not None:
            pool = select(pool, len(pool), args.max_prompt_tokens, fixed_output_len=args.fixed_output_len)
            records = [s for s in pool if s.prompt_len + s.output_len <= args.max_tokens]
            if not records:
                raise DatasetError(f"no prompt fits --max-tokens {args.max_tokens} with {args.fixed_output_len} more")
        else:
            records = ascendcloud.serving_select(pool, args.max_tokens, args.max_prompt_tokens)
    endpoint = _connect(args, where)
    outputs = CaseOutputs(args, "dynamic", args.backend or "openai")
    try:
        for index, case in enumerate(cases):
            result = measure_dynamic(
                endpoint, tokens, case, settings, args.repeats, records, label, index, outputs.progress
            )
            outputs.add(result)
    finally:
        outputs.finish()
    return 1 if outputs.failed else 0
