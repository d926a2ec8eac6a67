"""`llmqual bench`'s options checked before any request: the output files, the static case's options, and the
load settings, built by the plan's own rules (`LoadSpec`) so a plan and the command line mean the same thing and a
bad value names its option."""

from __future__ import annotations

import argparse
from pathlib import Path

from pydantic import ValidationError

from harness.bench.cases import BenchInputError, LoadSettings
from harness.client.openai import Route
from harness.config.suites import LoadSpec
from harness.metrics.serving import SLO
from harness.metrics.stats import PERCENTILES
from harness.results.vllm_format import METRICS
from harness.runtime.affinity import placement_problem

# The option that sets each LoadSpec field, for messages.
OPTIONS = {
    "endpoint_type": "--endpoint-type",
    "ignore_eos": "--no-ignore-eos",
    "seed": "--seed",
    "request_timeout_s": "--request-timeout",
    "case_deadline_s": "--case-deadline",
    "max_p99_lag_ms": "--max-p99-lag-ms",
    "min_rate_fraction": "--min-rate-fraction",
    "max_ttft_overhead": "--max-ttft-overhead",
    "save_records": "--save-result",
    "warmup_requests": "--num-warmups",
    "min_requests": "--min-requests",
    "min_seconds": "--min-seconds",
    "client_cpus": "--client-cpus",
    "client_workers": "--client-workers",
}


def goodput(items: list[str] | None) -> SLO:
    """vLLM's `--goodput ttft:500 tpot:50` syntax (milliseconds)."""
    limits: dict[str, float] = {}
    for item in items or []:
        name, _, value = item.partition(":")
        if name not in ("ttft", "tpot", "e2el") or not value:
            raise BenchInputError(f"--goodput takes KEY:MS with KEY one of ttft, tpot, e2el; got {item!r}")
        limits[f"{name}_ms"] = float(value)
    return SLO(**limits)


def metadata_pairs(items: list[str] | None) -> dict[str, str]:
    pairs = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BenchInputError(f"--metadata takes KEY=VALUE pairs; got {item!r}")
        pairs[key.strip()] = value.strip()
    return pairs


def check_outputs(args: argparse.Namespace) -> None:
    """The scripts never overwrite a CSV (they open it exclusively, and fail after measuring); here that is said
    before the first request."""
    csv_path: Path = args.benchmark_csv
    if csv_path.exists() and csv_path.stat().st_size > 0:
        raise BenchInputError(
            f"--benchmark-csv {csv_path} exists: the AscendCloud tools never overwrite a CSV; move it away or name "
            "a new file"
        )
    if args.result_filename is not None and "/" in args.result_filename:
        raise BenchInputError("--result-filename is a file name; put the folder in --result-dir")
    args.metadata_pairs = metadata_pairs(args.metadata)
    args.percentile_names = [m.strip() for m in args.percentile_metrics.split(",") if m.strip()]
    unknown = sorted(set(args.percentile_names) - set(METRICS))
    if unknown:
        raise BenchInputError(f"--percentile-metrics: {unknown} unknown; choose from {', '.join(METRICS)}")
    try:
        args.percentile_values = [float(p) for p in args.metric_percentiles.split(",")]
    except ValueError as exc:
        raise BenchInputError(
            f"--metric-percentiles takes numbers like 50,90,99; got {args.metric_percentiles}"
        ) from exc
    missing = sorted(p for p in args.percentile_values if p not in PERCENTILES)
    if missing:
        raise BenchInputError(f"--metric-percentiles: llmqual computes {list(PERCENTILES)}; {missing} is not one")


def load_spec(args: argparse.Namespace, route: Route) -> LoadSpec:
    """The options as the plan section they stand for, checked by its rules; a bad value names its option."""
    values = {
        "endpoint_type": route,
        "ignore_eos": args.ignore_eos,
        "seed": args.seed,
        "request_timeout_s": args.request_timeout,
        "case_deadline_s": args.case_deadline,
        "max_p99_lag_ms": args.max_p99_lag_ms,
        "min_rate_fraction": args.min_rate_fraction,
        "max_ttft_overhead": args.max_ttft_overhead,
        "save_records": args.save_result,
        "warmup_requests": args.num_warmups,
        "min_requests": args.min_requests,
        "min_seconds": args.min_seconds,
        "client_cpus": args.client_cpus,
        "client_workers": args.client_workers,
    }
    try:
        spec = LoadSpec.model_validate(values)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else ""
        given = values.get(field)
        raise BenchInputError(f"{OPTIONS.get(field, field)} {given}: {error['msg'].lower()}") from exc
    problem = placement_problem(list(spec.client_cpus) if spec.client_cpus else None)
    if problem:
        raise BenchInputError(f"--client-cpus: {problem}; list cores from that set or drop the option")
    return spec


def settings(args: argparse.Namespace, route: Route) -> LoadSettings:
    spec = load_spec(args, route)
    k = args.num_speculative_tokens if getattr(args, "use_spec_decode", False) else -1
    return LoadSettings.from_spec(spec, num_speculative_tokens=k)


def check_static(args: argparse.Namespace) -> None:
    if args.enable_prefix_caching:
        if args.prefix_caching_num <= 0:
            raise BenchInputError("--enable-prefix-caching needs --prefix-caching-num N (the shared prefix's tokens)")
        if args.dataset_type == "random" and any(args.prefix_caching_num >= p for p in args.prompt_tokens):
            raise BenchInputError(
                f"--prefix-caching-num {args.prefix_caching_num} must be below every --prompt-tokens value "
                f"({args.prompt_tokens}): the prefix is part of the prompt"
            )
    if args.dataset_type != "random" and args.dataset_path is None:
        raise BenchInputError(f"--dataset-type {args.dataset_type} needs --dataset-path FILE")
    if args.use_spec_decode and args.num_speculative_tokens < -1:
        raise BenchInputError("--num-speculative-tokens is the server's k (>= 0), or -1 to skip acceptance")
