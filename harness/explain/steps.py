"""A rehearsal's steps: what one process or file of a run would be, and how a step is written for its reader.

A step holds the exact command line and the environment it gets on top of the harness's (secret values masked),
the devices it leases, the files it writes, and notes: what only the run can know, and what this machine said of
the step's inputs. `render` writes them as text an engineer can compare line by line with a vendor's guide;
`as_json` as one document for tools.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from harness.secrets import MASK, redact

# A name part (between underscores) that says the value is a secret: HF_TOKEN, VLLM_API_KEY, not TOKENIZER_PATH.
SECRET_NAME = re.compile(r"(^|_)(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?)(_|$)", re.IGNORECASE)
FREE_PORT = "<free port>"  # a port picked when the process starts
CONTAINER_NAME = "llmqual-<id>"  # a name drawn when the container starts
OWNER = "<harness pid>:<start ticks>"  # the running harness's identity, for the next run's sweep


@dataclass(frozen=True)
class Step:
    """One thing a run starts (`argv`) or writes (`content`), on deployment node `node`."""

    kind: str  # container, server, instance, proxy, training, model, rank table
    title: str
    node: int = 0
    argv: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()  # on top of the harness's environment, secrets masked
    devices: tuple[int, ...] = ()
    writes: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    content: str = ""  # the text of a file the run writes (a rank table)
    elsewhere: str = ""  # the command that starts it on its own node, when that is not this harness's node


def masked(env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """`env` sorted by name, with the value of every variable whose name says it is a secret (an API key, a
    token, a password) and every registered secret (harness.secrets) replaced by the mask."""
    return tuple(sorted((k, MASK if SECRET_NAME.search(k) and v else redact(v)) for k, v in env.items()))


def shell_lines(argv: Sequence[str]) -> list[str]:
    """The command line as a shell takes it (quoted where needed), one option (with its value) per line, as the
    vendors' guides write theirs: each line but the last ends in a backslash."""
    groups: list[list[str]] = []
    takes_value = False  # the last group is an option without `=` that has not had its value yet
    for word in argv:
        quoted = shlex.quote(word)
        option = word.startswith("-") and len(word) > 1
        if option or not groups:
            groups.append([quoted])
            takes_value = option and "=" not in word
        elif takes_value or not groups[-1][0].startswith("-"):
            groups[-1].append(quoted)
            takes_value = False
        else:
            groups.append([quoted])
    lines = [" ".join(group) for group in groups]
    return [line + " \\" for line in lines[:-1]] + lines[-1:]


def render(plan_name: str, source: str, platform: str, steps: Iterable[Step]) -> str:
    """The rehearsal as text: one numbered block per step, grouped by node."""
    steps = list(steps)
    lines = [
        f"plan {plan_name} ({platform}), {source}: {len(steps)} steps, nothing started",
        "env: what each process gets on top of the harness's environment (secrets as ***)",
    ]
    node = None
    for number, step in enumerate(steps, 1):
        if step.node != node:
            node = step.node
            here = node == 0 or any("started here" in note for note in step.notes)
            lines += ["", f"== node {node}" + ("" if here else " (another machine)")]
        head = f"{number}. {step.kind}: {step.title}"
        if step.devices:
            head += f" [devices {', '.join(str(d) for d in step.devices)}]"
        lines += ["", head]
        if step.elsewhere:
            lines.append(f"   started there with: {step.elsewhere}")
        if step.argv:
            command = shell_lines(step.argv)
            lines += [f"   $ {command[0]}", *(f"       {line}" for line in command[1:])]
        lines += [f"   env {name}={value}" for name, value in step.env]
        lines += [f"   writes {path}" for path in step.writes]
        lines += [f"   note: {note}" for note in step.notes]
        if step.content:
            lines += [f"   | {line}" for line in step.content.splitlines()]
    return "\n".join(lines) + "\n"


def as_json(plan_name: str, source: str, platform: str, steps: Iterable[Step]) -> dict[str, Any]:
    """The rehearsal as one JSON-ready document."""
    documents = []
    for step in steps:
        document = asdict(step)
        document["env"] = dict(step.env)
        documents.append(document)
    return {"plan": plan_name, "source": source, "platform": platform, "steps": documents}
