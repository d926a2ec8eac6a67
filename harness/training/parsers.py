"""Training-log parsers, one per family, in a registry; the format is detected or named.

- `megatron`: Megatron-LM / MindSpeed-LLM / ModelLink iteration lines (`| key: value |` fields).
- `llamafactory`: LLaMA-Factory `trainer_log.jsonl`.
- `hf`: transformers `trainer_state.json` (`log_history`) or console dict lines `{'loss': ..., ...}`.
- `llmqual`: the harness's own curve document (`llmqual train parse-log --json`), used for reference curves.

All are robust to unrelated lines in between, ANSI colours, a rank prefix before a line, a field wrapped onto
the next line, and a last line still being written (its unterminated tail is ignored).
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable
from typing import Any

from harness.config.errors import did_you_mean
from harness.errors import HarnessError
from harness.training.curve import EvalPoint, LossCurve, LossPoint

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
ITERATION = re.compile(r"\biteration\s+(\d+)\s*/\s*(\d+)")
VALIDATION = re.compile(r"validation loss at iteration\s+(\d+)")
FIELD = re.compile(
    r"([A-Za-z][A-Za-z0-9 _()/%.-]*?)\s*:\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf|-inf)\s*\|", re.I
)
CONTINUATION = re.compile(r"^\s*[A-Za-z][A-Za-z0-9 _()/%.-]*:\s*\S+\s*\|")


class LogFormatError(HarnessError):
    """A log cannot be read as the named (or any known) format."""


Parser = Callable[[str], LossCurve]
PARSERS: dict[str, Parser] = {}


def register(name: str) -> Callable[[Parser], Parser]:
    def add(parser: Parser) -> Parser:
        PARSERS[name] = parser
        return parser

    return add


def _clean(text: str) -> list[str]:
    return [ANSI.sub("", line).rstrip("\r") for line in text.splitlines()]


def _number(value: str) -> float:
    return float(value)


MEGATRON_KEYS = {
    "lm loss": "loss",
    "loss": "loss",
    "learning rate": "learning_rate",
    "grad norm": "grad_norm",
    "elapsed time per iteration (ms)": "elapsed_ms",
    "consumed tokens": "tokens",
    "global batch size": "global_batch_size",
    "gloabl batch size": "global_batch_size",  # a misspelling some MindSpeed versions print
    "number of skipped iterations": "skipped",
    "number of nan iterations": "nan",
}


def _records(lines: list[str]) -> list[str]:
    """Iteration and validation records, each joined with the field lines wrapped after it."""
    records: list[str] = []
    for line in lines:
        if ITERATION.search(line) or VALIDATION.search(line):
            records.append(line)
        elif records and CONTINUATION.match(line) and not re.match(r"^\s*\[", line):
            records[-1] += " " + line.strip()
    return records


@register("megatron")
def parse_megatron(text: str) -> LossCurve:
    lines = _clean(text)
    records = _records(lines)
    points, evals = [], []
    for record in records:
        body = record
        fields: dict[str, float] = {}
        for match in FIELD.finditer(body):
            key = " ".join(match.group(1).split()).lower()
            fields[key] = _number(match.group(2))
        validation = VALIDATION.search(body)
        if validation:
            value = fields.get("lm loss value", fields.get("loss value"))
            if value is not None:
                others = {k: v for k, v in fields.items() if k not in ("lm loss value", "loss value")}
                evals.append(EvalPoint(int(validation.group(1)), value, others))
            continue
        iteration = ITERATION.search(body)
        assert iteration is not None
        known: dict[str, Any] = {}
        extra: dict[str, Any] = {"total_iterations": int(iteration.group(2))}
        for key, value in fields.items():
            if key in MEGATRON_KEYS:
                known[MEGATRON_KEYS[key]] = value
            elif key != "iteration":
                extra[key] = value
        for name in ("global_batch_size", "skipped", "nan"):
            if name in known:
                known[name] = int(known[name])
        if "loss" not in known:
            continue  # a line cut before its loss field (still being written), or not a training step
        points.append(LossPoint(step=int(iteration.group(1)), extra=extra, **known))
    if not points and not evals:
        raise LogFormatError("no Megatron iteration line with a loss (`iteration N/ M | ... lm loss: X |`)")
    return LossCurve("megatron", points, evals)


def _clock_seconds(text: Any) -> float | None:
    if not isinstance(text, str):
        return None
    parts = text.split(":")
    try:
        return float(sum(float(p) * 60**i for i, p in enumerate(reversed(parts))))
    except ValueError:
        return None


def _json_lines(lines: list[str]) -> list[dict[str, Any]]:
    rows = []
    for line in lines:
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line still being written, or not ours
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _per_iteration_ms(step: int, clock_s: float | None, previous: tuple[int, float] | None) -> float | None:
    """Milliseconds per iteration between two logged steps of a cumulative clock (None for the first one, whose
    interval includes start-up)."""
    if clock_s is None or previous is None or step <= previous[0]:
        return None
    return (clock_s - previous[1]) * 1000.0 / (step - previous[0])


@register("llamafactory")
def parse_llamafactory(text: str) -> LossCurve:
    rows = [r for r in _json_lines(_clean(text)) if "current_steps" in r]
    if not rows:
        raise LogFormatError('no LLaMA-Factory trainer_log.jsonl record (`{"current_steps": ...}`)')
    points, evals = [], []
    previous: tuple[int, float] | None = None
    for row in rows:
        step = int(row["current_steps"])
        if "eval_loss" in row:
            evals.append(EvalPoint(step, float(row["eval_loss"])))
        if "loss" not in row:
            continue  # the final summary line carries no loss
        elapsed = _clock_seconds(row.get("elapsed_time"))
        known = {"loss", "lr", "current_steps", "eval_loss", "total_tokens"}
        points.append(
            LossPoint(
                step=step,
                loss=float(row["loss"]),
                learning_rate=row.get("lr"),
                elapsed_ms=_per_iteration_ms(step, elapsed, previous),
                tokens=row.get("total_tokens"),
                extra={k: v for k, v in row.items() if k not in known}
                | ({"elapsed_s": elapsed} if elapsed is not None else {}),
            )
        )
        previous = (step, elapsed) if elapsed is not None else previous
    return LossCurve("llamafactory", points, evals)


def _hf_entries(text: str) -> list[dict[str, Any]]:
    stripped = text.strip()
    if stripped.startswith("{") and '"log_history"' in stripped[:100_000]:
        try:
            state = json.loads(stripped)
            return list(state.get("log_history") or [])
        except json.JSONDecodeError:
            pass
    entries = []
    for line in _clean(text):
        start = line.find("{'")
        if start < 0:
            continue
        try:
            entry = ast.literal_eval(line[start : line.rindex("}") + 1])
        except (ValueError, SyntaxError):
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


@register("hf")
def parse_hf(text: str) -> LossCurve:
    """transformers' log history. With `include_num_input_tokens_seen`, entries carry the token counter and the
    run's cumulative `train_runtime`, from which the time per iteration follows."""
    entries = _hf_entries(text)
    if not entries:
        raise LogFormatError("no transformers log_history entries or `{'loss': ...}` console lines")
    points, evals = [], []
    previous: tuple[int, float] | None = None
    for index, entry in enumerate(entries, start=1):
        step = int(entry.get("step", index))  # console lines carry no step: their order stands in for it
        if "eval_loss" in entry:
            evals.append(
                EvalPoint(step, float(entry["eval_loss"]), {k: v for k, v in entry.items() if k.startswith("eval_")})
            )
        if "loss" in entry:
            clock = entry.get("train_runtime")
            known = {"loss", "learning_rate", "grad_norm", "step", "num_input_tokens_seen"}
            points.append(
                LossPoint(
                    step=step,
                    loss=float(entry["loss"]),
                    learning_rate=entry.get("learning_rate"),
                    grad_norm=entry.get("grad_norm"),
                    elapsed_ms=_per_iteration_ms(step, clock, previous),
                    tokens=entry.get("num_input_tokens_seen"),
                    extra={k: v for k, v in entry.items() if k not in known},
                )
            )
            previous = (step, float(clock)) if clock is not None else previous
    return LossCurve("hf", points, evals)


@register("llmqual")
def parse_llmqual(text: str) -> LossCurve:
    try:
        document = json.loads(text)
        points = [LossPoint(**p) for p in document["points"]]
        evals = [EvalPoint(**p) for p in document.get("eval_points", [])]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise LogFormatError(f'not an llmqual curve document ({{"format": ..., "points": [...]}}): {exc}') from exc
    return LossCurve(str(document.get("format", "llmqual")), points, evals)


def detect(text: str) -> str:
    """The log family of `text`, from its first recognisable lines."""
    head = text[:200_000]
    if head.lstrip().startswith("{") and '"points"' in head and '"format"' in head:
        return "llmqual"
    if '"log_history"' in head:
        return "hf"
    if '"current_steps"' in head:
        return "llamafactory"
    if ITERATION.search(head) and "|" in head:
        return "megatron"
    if "{'loss'" in head or "{'eval_loss'" in head:
        return "hf"
    raise LogFormatError("cannot tell the log format; name it with --format (" + ", ".join(sorted(PARSERS)) + ")")


def parse_log(text: str, fmt: str = "auto") -> LossCurve:
    """Parse a training log; `fmt` is a registered format or "auto"."""
    name = detect(text) if fmt == "auto" else fmt
    if name not in PARSERS:
        raise LogFormatError(f"unknown log format {fmt!r}: {did_you_mean(fmt, PARSERS)}")
    return PARSERS[name](text)
