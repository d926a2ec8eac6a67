"""A diffusion case through a running ComfyUI server: the plan's workflow with the case's parameters, queued and
waited for call by call.

The workflow is ComfyUI's API format (the web UI's "Export (API)"): `{node id: {"class_type", "inputs"}}`. The
case's width, height and batch size go to the one node whose inputs have all three (EmptyLatentImage,
EmptySD3LatentImage, ...), its steps to every node with a `steps` input (KSampler, BasicScheduler, ...), and each
call gets a new seed in every `seed`/`noise_seed` input and a new prompt in every string input holding
`{prompt}`. ComfyUI caches the output of every node whose inputs did not change, so without a new seed the second
call would be answered from its cache: a workflow without a seed input is refused, and a call in which a sampling
node was answered from the cache (the history's `execution_cached` message) makes the case invalid.

One call: `POST /prompt` with `{"prompt": workflow, "client_id"}` (a 400 carries ComfyUI's `error` and
`node_errors`), then `GET /history/{prompt_id}` every `poll-s` until the entry's `status.completed` (or
`status_str` "error"), within `timeout-s`. Its time runs from the POST to the completed history (what a client of
the server waits, queueing included); the server's own time is its `execution_start` to `execution_success`
timestamps; its images are those the history's outputs list.
"""

from __future__ import annotations

import copy
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.diffusion.cases import DiffusionCase
from harness.diffusion.protocol import Call, CallSlot
from harness.errors import HarnessError, PlanError

LATENT_INPUTS = ("width", "height", "batch_size")
SEED_INPUTS = ("seed", "noise_seed")
PROMPT_PLACEHOLDER = "{prompt}"
WORKFLOW_KEY = "suites.diffusion.comfyui.workflow"


class ComfyUIError(HarnessError):
    """The ComfyUI server refused a prompt, failed it, or did not finish it in time."""


@dataclass(frozen=True)
class Workflow:
    """An API-format workflow and where the case's parameters go in it."""

    graph: dict[str, Any]
    latent: str  # the node taking width, height, batch_size
    steps: tuple[str, ...]  # nodes taking steps
    seeds: tuple[tuple[str, str], ...]  # (node, input) taking a seed
    prompts: tuple[tuple[str, str], ...]  # (node, input) whose text holds {prompt}

    @property
    def guarded(self) -> tuple[str, ...]:
        """Nodes whose work a call must really do: the sampling nodes (an empty latent of the same size is rightly
        taken from the cache; everything downstream of a sampler runs again when the sampler does)."""
        return self.steps


def _nodes_with(graph: dict[str, Any], *inputs: str) -> list[str]:
    return [node for node, body in graph.items() if all(name in body["inputs"] for name in inputs)]


def load_workflow(path: Path, plan_source: str) -> Workflow:
    """The workflow at `path`, checked: a PlanError naming the key and what is missing, before any call."""

    def refuse(problem: str, fix: str) -> PlanError:
        return PlanError(plan_source, WORKFLOW_KEY, f"{path}: {problem}", fix)

    try:
        graph = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise refuse(f"cannot read it ({exc.strerror})", "point it at the workflow JSON") from exc
    except ValueError as exc:
        raise refuse(f"not JSON ({exc})", "export the workflow with ComfyUI's Export (API)") from exc
    if isinstance(graph, dict) and "nodes" in graph and "links" in graph:
        raise refuse("this is the web UI's workflow format, not the API format", "export it with Export (API)")
    if not isinstance(graph, dict) or not all(
        isinstance(body, dict) and isinstance(body.get("class_type"), str) and isinstance(body.get("inputs"), dict)
        for body in graph.values()
    ):
        raise refuse("not an API-format workflow ({node id: {class_type, inputs}})", "export it with Export (API)")
    latents = _nodes_with(graph, *LATENT_INPUTS)
    if len(latents) != 1:
        found = "no node" if not latents else f"{len(latents)} nodes ({', '.join(latents)})"
        raise refuse(
            f"{found} with inputs {', '.join(LATENT_INPUTS)} (the case's size and batch go there)",
            "use a workflow with one latent-image node, e.g. EmptyLatentImage or EmptySD3LatentImage",
        )
    steps = _nodes_with(graph, "steps")
    if not steps:
        raise refuse("no node with a steps input (the case's steps go there)", "add a KSampler or BasicScheduler")
    seeds = [(node, name) for name in SEED_INPUTS for node in _nodes_with(graph, name)]
    if not seeds:
        raise refuse(
            "no node with a seed or noise_seed input: every call after the first would be answered from "
            "ComfyUI's cache",
            "use a workflow with a sampler seed (KSampler) or a RandomNoise node",
        )
    prompts = [
        (node, name)
        for node, body in graph.items()
        for name, value in body["inputs"].items()
        if isinstance(value, str) and PROMPT_PLACEHOLDER in value
    ]
    return Workflow(graph, latents[0], tuple(steps), tuple(seeds), tuple(prompts))


def prepared(workflow: Workflow, case: DiffusionCase, seed: int, prompt: str) -> dict[str, Any]:
    """The graph for one call of `case`."""
    graph = copy.deepcopy(workflow.graph)
    graph[workflow.latent]["inputs"] |= {"width": case.width, "height": case.height, "batch_size": case.batch}
    for node in workflow.steps:
        graph[node]["inputs"]["steps"] = case.steps
    for node, name in workflow.seeds:
        graph[node]["inputs"][name] = seed
    for node, name in workflow.prompts:
        graph[node]["inputs"][name] = graph[node]["inputs"][name].replace(PROMPT_PLACEHOLDER, prompt)
    return graph


class ComfyUIClient:
    """`POST /prompt` and `GET /history/{id}` against `base_url`, every wait bounded."""

    def __init__(self, base_url: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.base_url, self.clock, self.client_id = base_url.rstrip("/"), clock, uuid.uuid4().hex

    def _request(self, path: str, body: dict[str, Any] | None, timeout_s: float) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base_url + path,
            data=data,
            headers={"Content-Type": "application/json"},
            method="GET" if body is None else "POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=max(timeout_s, 0.1)) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:2000]
            raise ComfyUIError(f"{self.base_url}{path} answered HTTP {exc.code}: {_error_text(detail)}") from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise ComfyUIError(f"{self.base_url}{path} did not answer: {exc}") from exc
        except ValueError as exc:
            raise ComfyUIError(f"{self.base_url}{path} answered with something other than JSON: {exc}") from exc

    def queue(self, graph: dict[str, Any], timeout_s: float) -> str:
        answer = self._request("/prompt", {"prompt": graph, "client_id": self.client_id}, timeout_s)
        if not isinstance(answer, dict) or not isinstance(answer.get("prompt_id"), str):
            raise ComfyUIError(f"{self.base_url}/prompt answered without a prompt_id: {str(answer)[:500]}")
        return str(answer["prompt_id"])

    def wait(self, prompt_id: str, deadline: float, poll_s: float) -> dict[str, Any]:
        """The history entry of `prompt_id` once it completed; a ComfyUIError if it failed or the deadline passed."""
        while True:
            left = deadline - self.clock()
            if left <= 0:
                raise ComfyUIError(f"prompt {prompt_id} did not complete within suites.diffusion.comfyui.timeout-s")
            history = self._request(f"/history/{prompt_id}", None, min(left, 30.0))
            entry = history.get(prompt_id) if isinstance(history, dict) else None
            status = entry.get("status", {}) if isinstance(entry, dict) else {}
            if status.get("status_str") == "error":
                raise ComfyUIError(f"prompt {prompt_id} failed on the server: {_messages_error(status)}")
            if isinstance(entry, dict) and status.get("completed"):
                return entry
            time.sleep(min(poll_s, max(deadline - self.clock(), 0.0)))

    def call(self, graph: dict[str, Any], timeout_s: float, poll_s: float) -> tuple[float, dict[str, Any]]:
        """(seconds from the POST to the completed history, the history entry)."""
        started = self.clock()
        prompt_id = self.queue(graph, timeout_s)
        entry = self.wait(prompt_id, started + timeout_s, poll_s)
        return self.clock() - started, entry


def _error_text(body: str) -> str:
    try:
        answer = json.loads(body)
    except ValueError:
        return body
    error = answer.get("error") if isinstance(answer, dict) else None
    text = error.get("message", str(error)) if isinstance(error, dict) else str(error or answer)
    nodes = answer.get("node_errors") if isinstance(answer, dict) else None
    return f"{text}; node errors: {json.dumps(nodes)[:1000]}" if nodes else text


def _messages(status: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for message in status.get("messages", []):
        if isinstance(message, list) and len(message) == 2 and isinstance(message[1], dict):
            yield str(message[0]), message[1]


def _messages_error(status: dict[str, Any]) -> str:
    for name, body in _messages(status):
        if name == "execution_error":
            return (
                f"{body.get('node_type', '?')} (node {body.get('node_id', '?')}): {body.get('exception_message', '')}"
            )
    return "no execution_error message in the history"


def history_call(phase: str, repeat: int, seconds: float, entry: dict[str, Any]) -> Call:
    """A Call from a completed history entry: its images, the server's own time, the nodes it answered from cache."""
    images = [image for output in entry.get("outputs", {}).values() for image in output.get("images", [])]
    times = {name: body.get("timestamp") for name, body in _messages(entry.get("status", {}))}  # ms since the epoch
    start, end = times.get("execution_start"), times.get("execution_success")
    server_s = (end - start) / 1000.0 if isinstance(start, int | float) and isinstance(end, int | float) else None
    cached = tuple(
        str(node)
        for name, body in _messages(entry.get("status", {}))
        if name == "execution_cached"
        for node in body.get("nodes", [])
    )
    return Call(phase, repeat, seconds, len(images), (), server_s, cached)


def run_comfyui_case(
    client: ComfyUIClient,
    workflow: Workflow,
    case: DiffusionCase,
    slots: list[CallSlot],
    seed: int,
    timeout_s: float,
    poll_s: float,
    events: Path,
) -> list[Call]:
    """Every call of the case in order, each one's event appended to `events` as it completes."""
    calls = []
    events.parent.mkdir(parents=True, exist_ok=True)
    with events.open("w", encoding="utf-8") as out:
        for index, slot in enumerate(slots):
            graph = prepared(workflow, case, seed + index, slot.prompts[0])  # one prompt makes the batch
            seconds, entry = client.call(graph, timeout_s, poll_s)
            call = history_call(slot.phase, slot.repeat, seconds, entry)
            calls.append(call)
            record = {"event": "call", "index": index, "phase": slot.phase, "repeat": slot.repeat, "seconds": seconds}
            out.write(json.dumps(record | {"images": call.images, "server_seconds": call.server_seconds}) + "\n")
            out.flush()
    return calls
