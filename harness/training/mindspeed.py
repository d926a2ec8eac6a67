"""MindSpeed-LLM / ModelLink as a launcher: a copy of the plan's shell script with its variables set (and exported),
placeholders the scripts ship with refused, and the Launch; checked before anything runs (docs/training.md)."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from pathlib import Path

from harness.config.training import MindSpeedSpec, TrainingSpec
from harness.training.launch import Launch, LaunchConfigError, Resolve, require_command

ASSIGNMENT = re.compile(r"^(?P<lead>\s*(?:export\s+)?)(?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)$")
PLACEHOLDER = re.compile(r"""^["']?your\b""", re.I)  # "your model save ckpt path", as the scripts ship
TRAIN_ITERS = re.compile(r"--train-iters[=\s]+[\"']?(?P<value>\$\{?\w+\}?|\d+)")


def set_script_vars(script: str, values: Mapping[str, str]) -> tuple[str, set[str]]:
    """`script` with every assignment of a name in `values` replaced by that value; the names it assigned."""
    lines, assigned = [], set()
    for line in script.splitlines():
        match = ASSIGNMENT.match(line)
        if match and match["name"] in values:
            assigned.add(match["name"])
            value = shlex.quote(values[match["name"]])
            line = f"{match['lead']}{match['name']}={value}  # set by llmqual"
        lines.append(line)
    return "\n".join(lines) + "\n", assigned


def unset_placeholders(script: str) -> list[str]:
    """Names still assigned a placeholder such as "your data path"."""
    return [
        m["name"] for line in script.splitlines() if (m := ASSIGNMENT.match(line)) and PLACEHOLDER.match(m["value"])
    ]


def train_iters(script: str) -> int | None:
    """The `--train-iters` the script passes, a literal or a variable it assigns; None if unknown."""
    match = TRAIN_ITERS.search(script)
    if match is None:
        return None
    value = match["value"]
    if value.startswith("$"):
        assigned = {m["name"]: m["value"] for line in script.splitlines() if (m := ASSIGNMENT.match(line))}
        value = assigned.get(value.strip("${}"), "").split("#")[0].strip().strip("\"'")
    return int(value) if value.isdigit() else None


def mindspeed_launch(training: TrainingSpec, model: Path, resolve: Resolve, out: Path, text: str = "") -> Launch:
    """The launch of the script's copy under `out` (`text`: the copy's content, for its step count): nothing is
    read, checked or written (a rehearsal shows this)."""
    spec: MindSpeedSpec | None = training.mindspeed
    if spec is None:
        raise LaunchConfigError("mindspeed", "missing", "add the section or choose another launcher")
    script = resolve(spec.script)
    values = {name: str(value) for name, value in spec.vars.items()}
    copy = out / script.name
    checkpoint = values.get(spec.checkpoint_var)
    return Launch(
        "mindspeed",
        # The guides' scripts end in `torchrun ... | tee logs/...`: without pipefail a crashed torchrun exits 0.
        ["bash", "-o", "pipefail", str(copy)],
        values,  # exported too: parts of the scripts read them as ${NAME:-default}
        resolve(spec.workdir) if spec.workdir else script.parent,
        out / "console.log",
        out / "console.log",  # the iteration lines go to stdout (the scripts tee them to their own log too)
        "megatron",
        Path(checkpoint) if checkpoint else None,
        (copy,),
        train_iters(text),  # after the plan's values are set
    )


def prepare_mindspeed(training: TrainingSpec, model: Path, resolve: Resolve, out: Path) -> Launch:
    spec: MindSpeedSpec | None = training.mindspeed
    if spec is None:
        raise LaunchConfigError("mindspeed", "missing", "add the section or choose another launcher")
    script = resolve(spec.script)
    try:
        original = script.read_text(encoding="utf-8")
    except OSError as exc:
        raise LaunchConfigError("mindspeed.script", f"cannot read {script}: {exc.strerror}", "fix the path") from exc
    text, _ = set_script_vars(original, {name: str(value) for name, value in spec.vars.items()})
    left = unset_placeholders(text)
    if left:
        raise LaunchConfigError(
            "mindspeed.vars",
            f"{script.name} still has placeholder values for {', '.join(left)}",
            f"set them under suites.training.mindspeed.vars (for example {left[0]}: /path)",
        )
    require_command(["bash"], "mindspeed.script")
    launch = mindspeed_launch(training, model, resolve, out, text)
    out.mkdir(parents=True, exist_ok=True)
    launch.written[0].write_text(text)
    return launch
