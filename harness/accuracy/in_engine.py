"""lm-eval with the model inside vLLM's own engine (lm-eval's `vllm` model), as the ModelArts guides run accuracy:

    lm_eval --model vllm --model_args pretrained=MODEL,tensor_parallel_size=N,gpu_memory_utilization=0.7,\\
        add_bos_token=True,max_model_len=4096 --tasks ... --batch_size auto

No server: lm-eval drives `vllm.LLM` in a child process (harness.accuracy.lm_eval_main), stopped whole at its
deadline. The plan's accuracy section selects it with `model: vllm`; its `model-args` take lm-eval's and vLLM's own
names and are laid over what the plan's server section already says (dtype, max-model-len, tensor-parallel-size,
quantization, trust-remote-code, eager mode), so the engine evaluated is the one served.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from harness.accuracy.evaluate import AccuracyError, EvalSettings, task_options
from harness.config.plan import Plan
from harness.errors import ProcessFailed
from harness.platform.environment import server_environment
from harness.runtime.process import run_to_end
from harness.secrets import redact


def engine_model_args(plan: Plan, model_path: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    """lm-eval's `vllm` model_args for the plan's model: `pretrained` first, then the plan's server settings under
    vLLM's names, then the accuracy section's `model-args`."""
    server = plan.server
    args: dict[str, Any] = {"pretrained": str(model_path), "tensor_parallel_size": server.tensor_parallel_size}
    if server.dtype != "auto":
        args["dtype"] = server.dtype
    if server.max_model_len is not None:
        args["max_model_len"] = server.max_model_len
    if server.quantization is not None:
        args["quantization"] = server.quantization
    if server.kv_cache_dtype != "auto":
        args["kv_cache_dtype"] = server.kv_cache_dtype
    if "--enforce-eager" in server.extra_args:
        args["enforce_eager"] = True
    if "--trust-remote-code" in server.extra_args:
        args["trust_remote_code"] = True
    return {**args, **overrides}


def engine_environment(plan: Plan, cache: Path) -> dict[str, str]:
    """The server's environment for the plan's platform (its cards, its KV-cache space on CPU, offline hubs), and on
    CPU the platform named for vLLM (its CPU wheel's metadata cannot say it: harness.accuracy.lm_eval_main)."""
    devices = plan.server.devices or ()
    needed = plan.server.tensor_parallel_size * plan.server.pipeline_parallel_size
    env = server_environment(plan.platform, cache, devices[:needed], plan.server.env)
    env.update(HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1")
    if plan.platform == "cpu":
        env["VLLM_TARGET_DEVICE"] = "cpu"
    return env


def _arg(value: Any) -> str:
    return str(value) if not isinstance(value, bool) else ("True" if value else "False")


def lm_eval_arguments(
    model_args: dict[str, Any], task: str, include: Path | None, settings: EvalSettings, output_path: Path
) -> list[str]:
    """lm-eval's command line for this evaluation (what `llmqual eval` and the guides run)."""
    line = ["--model", "vllm", "--model_args", ",".join(f"{k}={_arg(v)}" for k, v in model_args.items())]
    line += ["--tasks", task, "--batch_size", "auto", "--seed", str(settings.seed), "--output_path", str(output_path)]
    return line + task_options(include, settings) + (["--log_samples"] if settings.log_samples else [])


def results_file(output_path: Path) -> Path:
    """The results JSON lm-eval wrote under --output_path (`<model>/results_<time>.json`), the newest."""
    found = sorted(output_path.rglob("results_*.json"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise AccuracyError(f"lm-eval wrote no results_*.json under {output_path}")
    return found[-1]


def evaluate_in_engine(
    model_args: dict[str, Any],
    env: dict[str, str],
    task: str,
    include: Path | None,
    settings: EvalSettings,
    out_dir: Path,
    timeout_s: float,
) -> dict[str, Any]:
    """Evaluate one task with lm-eval's `vllm` model in a child process; lm-eval's results JSON is kept as
    `out_dir/lm_eval_results.json` (and its own files under `out_dir/lm_eval`)."""
    raw = out_dir / "lm_eval"
    argv = [
        sys.executable,
        "-m",
        "harness.accuracy.lm_eval_main",
        *lm_eval_arguments(model_args, task, include, settings, raw),
    ]
    try:
        run_to_end(
            argv,
            out_dir / "lm_eval.log",
            env,
            timeout_s,
            f"lm-eval (vllm) on {task}",
            None,
            "suites.accuracy.engine-timeout-s",
        )
    except ProcessFailed as exc:
        raise AccuracyError(str(exc)) from exc
    document: dict[str, Any] = json.loads(results_file(raw).read_text(encoding="utf-8"))
    (out_dir / "lm_eval_results.json").write_text(redact(json.dumps(document, indent=2, ensure_ascii=False)), "utf-8")
    return document
