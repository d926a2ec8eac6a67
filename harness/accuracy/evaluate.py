"""Run lm-eval (as a library) against a served model, and say how to run the same thing from its command line;
or on a checkpoint in this process (`evaluate_checkpoint`, transformers), for the training suite.

The model type is `local-completions` (or `local-chat-completions` for generation tasks on chat models) pointed
at the server; the tokenizer is the served model's, loaded locally (`tokenizer_backend=huggingface`) so context
lengths of log-likelihood requests are counted as the server counts them. Before a log-likelihood task the server
is probed for prompt log-probabilities: a server that does not return them would otherwise score at chance.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.client.openai import request_once
from harness.errors import HarnessError
from harness.secrets import redact
from harness.server.endpoint import Endpoint

LOGLIKELIHOOD_TYPES = ("loglikelihood", "loglikelihood_rolling", "multiple_choice")


class AccuracyError(HarnessError):
    """An evaluation cannot give a meaningful score (server without prompt log-probs, lm-eval failure)."""


@dataclass(frozen=True)
class EvalSettings:
    num_fewshot: int | None = None
    limit: int | float | None = None
    batch_size: int = 1
    num_concurrent: int = 1
    max_retries: int = 3
    timeout_s: int = 300
    chat: bool = False  # local-chat-completions with the chat template, for generation tasks on chat models
    log_samples: bool = False
    seed: int = 1234


def model_type(settings: EvalSettings) -> str:
    return "local-chat-completions" if settings.chat else "local-completions"


def model_args(endpoint: Endpoint, tokenizer: Path, settings: EvalSettings) -> dict[str, Any]:
    """lm-eval's model_args for the served model."""
    route = "/v1/chat/completions" if settings.chat else "/v1/completions"
    args: dict[str, Any] = {
        "model": endpoint.model,
        "base_url": endpoint.url(route),
        "tokenizer": str(tokenizer),
        "tokenizer_backend": "huggingface",
        "num_concurrent": settings.num_concurrent,
        "max_retries": settings.max_retries,
        "timeout": settings.timeout_s,
        "seed": settings.seed,
    }
    if endpoint.max_model_len:
        args["max_length"] = endpoint.max_model_len
    return args


def cli_arguments(
    endpoint: Endpoint, tokenizer: Path, task: str, include: Path | None, settings: EvalSettings
) -> list[str]:
    """The `lm_eval` command line that runs exactly this evaluation (kept in the result for reproducing it)."""
    args = model_args(endpoint, tokenizer, settings)
    line = ["--model", model_type(settings), "--model_args", ",".join(f"{k}={v}" for k, v in args.items())]
    line += ["--tasks", task, "--batch_size", str(settings.batch_size), "--seed", str(settings.seed)]
    return line + task_options(include, settings)


def task_options(include: Path | None, settings: EvalSettings) -> list[str]:
    """lm_eval's options for the task folder, few-shot count, limit and chat template, as `settings` say."""
    line = []
    if include is not None:
        line += ["--include_path", str(include)]
    if settings.num_fewshot is not None:
        line += ["--num_fewshot", str(settings.num_fewshot)]
    if settings.limit is not None:
        line += ["--limit", str(settings.limit)]
    if settings.chat:
        line += ["--apply_chat_template"]
    return line


def probe_prompt_logprobs(endpoint: Endpoint, timeout_s: float = 60.0) -> None:
    """Raise AccuracyError unless the server returns log-probabilities of the prompt's tokens (echo + logprobs)."""
    probe = {
        "prompt": "The engineer measures the model.",
        "max_tokens": 1,
        "temperature": 0,
        "echo": True,
        "logprobs": 1,
    }
    record = request_once(endpoint, "completions", probe, timeout_s)
    if not record.ok:
        raise AccuracyError(
            f"{endpoint.base_url} refused a log-likelihood probe ({record.error} {record.status}): "
            f"{record.error_detail[:300]}"
        )
    choices = (record.body or {}).get("choices") or [{}]
    logprobs = (choices[0].get("logprobs") or {}).get("token_logprobs") or []
    if not any(isinstance(v, int | float) for v in logprobs[1:]):
        raise AccuracyError(
            f"{endpoint.base_url} returned no prompt log-probabilities (echo=true, logprobs=1 gave "
            f"{str(choices[0].get('logprobs'))[:200]}); log-likelihood tasks would score at chance. Serve with an "
            "engine that supports echo with logprobs (vLLM does), or run generation tasks only."
        )


def _offline_hub() -> None:
    """Datasets come from the task folder or an existing cache: never from the network on this path."""
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


@contextmanager
def _api_key_for_lm_eval(key: str | None) -> Iterator[None]:
    """lm-eval's local-completions models read the key from OPENAI_API_KEY (not from model_args, which it logs)."""
    if key is None:
        yield
        return
    before = os.environ.get("OPENAI_API_KEY")
    os.environ["OPENAI_API_KEY"] = key
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("OPENAI_API_KEY", None)
        else:
            os.environ["OPENAI_API_KEY"] = before


def evaluate(
    endpoint: Endpoint,
    tokenizer: Path,
    task: str,
    include: Path | None,
    settings: EvalSettings,
    out_dir: Path,
    offline: bool = True,
) -> dict[str, Any]:
    """Evaluate one task on a served model; lm-eval's results JSON (and samples, when asked) go into `out_dir`."""
    if offline:
        _offline_hub()
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(include) if include else None)
    leaves = manager.load([task])["tasks"].values()
    if any(getattr(t, "OUTPUT_TYPE", None) in LOGLIKELIHOOD_TYPES for t in leaves):
        probe_prompt_logprobs(endpoint, settings.timeout_s)
    with _api_key_for_lm_eval(endpoint.api_key):
        return _run(model_type(settings), model_args(endpoint, tokenizer, settings), task, manager, settings, out_dir)


def evaluate_checkpoint(
    checkpoint: Path, task: str, include: Path | None, settings: EvalSettings, out_dir: Path
) -> dict[str, Any]:
    """Evaluate one task on a checkpoint folder in this process with transformers (lm-eval's `hf` model, CPU,
    float32): how a training suite scores what it trained without depending on a serving stack. The same as
    `lm_eval --model hf --model_args pretrained=CHECKPOINT,dtype=float32,device=cpu`."""
    _offline_hub()
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(include) if include else None)
    args = {"pretrained": str(checkpoint), "dtype": "float32", "device": "cpu"}
    return _run("hf", args, task, manager, settings, out_dir)


def _run(
    model: str, args: dict[str, Any], task: str, manager: Any, settings: EvalSettings, out_dir: Path
) -> dict[str, Any]:
    from lm_eval import simple_evaluate
    from lm_eval.utils import handle_non_serializable

    results = simple_evaluate(
        model=model,
        model_args=args,
        tasks=[task],
        task_manager=manager,
        num_fewshot=settings.num_fewshot,
        batch_size=settings.batch_size,
        limit=settings.limit,
        log_samples=settings.log_samples,
        apply_chat_template=settings.chat,
        random_seed=settings.seed,
    )
    if results is None:
        raise AccuracyError(f"lm-eval returned no results for {task}")
    out_dir.mkdir(parents=True, exist_ok=True)
    samples = results.pop("samples", None)
    document: dict[str, Any] = json.loads(json.dumps(results, default=handle_non_serializable))
    (out_dir / "lm_eval_results.json").write_text(redact(json.dumps(document, indent=2, ensure_ascii=False)), "utf-8")
    if samples:
        with (out_dir / "lm_eval_samples.jsonl").open("w", encoding="utf-8") as f:
            for name, rows in samples.items():
                for row in rows:
                    f.write(redact(json.dumps({"task": name, **row}, default=handle_non_serializable)) + "\n")
    return document
