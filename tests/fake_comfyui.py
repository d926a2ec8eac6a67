"""A fake ComfyUI server: ComfyUI cannot be installed here (it needs its models and a GPU to be worth running), so the
client is tested against this fake of its HTTP protocol, written from ComfyUI's `server.py` (`POST /prompt`,
`GET /history/{prompt_id}`) and `execution.py` (the history entry's `outputs` and `status` with `status_str`,
`completed` and `messages` such as `execution_start`, `execution_cached`, `execution_success`, timestamps in ms).

It runs prompts one at a time in the order queued, each taking `seconds_per_step` x the sampler's steps x the
latent's batch size, and answers from its cache as ComfyUI does: a node whose inputs equal those it had in an
earlier prompt is listed in `execution_cached`. Modes: ok, reject (HTTP 400 with node errors, as ComfyUI's
validation answers), error (the prompt fails while running: `status_str` "error" with an `execution_error`), hang
(never completes), fewer_images (one image fewer than the batch).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

from tests.fakes import serving


def _stamp() -> int:
    return int(time.time() * 1000)


class FakeComfyUI:
    def __init__(self, mode: str = "ok", seconds_per_step: float = 0.005) -> None:
        self.mode, self.seconds_per_step = mode, seconds_per_step
        self.history: dict[str, dict[str, Any]] = {}
        self.seen_inputs: dict[str, str] = {}  # node id -> its inputs, as last run (ComfyUI's cache key, simplified)
        self.queued: list[dict[str, Any]] = []  # every graph received, for the tests to inspect
        self.lock = asyncio.Lock()  # one prompt at a time, as ComfyUI's single worker runs them

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/prompt", self.post_prompt)
        app.router.add_get("/history/{prompt_id}", self.get_history)
        return app

    async def post_prompt(self, request: web.Request) -> web.Response:
        body = await request.json()
        graph = body.get("prompt")
        if not isinstance(graph, dict):
            error = {"type": "no_prompt", "message": "No prompt provided", "details": "", "extra_info": {}}
            return web.json_response({"error": error, "node_errors": {}}, status=400)
        if self.mode == "reject":
            error = {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation"}
            node_errors = {"4": {"errors": [{"message": "Value not in list", "details": "ckpt_name: 'x.safetensors'"}]}}
            return web.json_response({"error": error, "node_errors": node_errors}, status=400)
        prompt_id = str(uuid.uuid4())
        self.queued.append(graph)
        asyncio.get_running_loop().create_task(self.execute(prompt_id, graph))
        return web.json_response({"prompt_id": prompt_id, "number": len(self.queued), "node_errors": {}})

    async def execute(self, prompt_id: str, graph: dict[str, Any]) -> None:
        async with self.lock:
            if self.mode == "hang":
                return
            messages: list[list[Any]] = [["execution_start", {"prompt_id": prompt_id, "timestamp": _stamp()}]]
            cached = [node for node, body in graph.items() if self.seen_inputs.get(node) == json.dumps(body)]
            self.seen_inputs |= {node: json.dumps(body) for node, body in graph.items()}
            messages.append(["execution_cached", {"nodes": cached, "prompt_id": prompt_id, "timestamp": _stamp()}])
            latent = next(b["inputs"] for b in graph.values() if "batch_size" in b["inputs"])
            steps = next(b["inputs"]["steps"] for b in graph.values() if "steps" in b["inputs"])
            await asyncio.sleep(self.seconds_per_step * steps * latent["batch_size"])
            if self.mode == "error":
                failure = {"prompt_id": prompt_id, "node_id": "3", "node_type": "KSampler",
                           "exception_message": "Allocation on device", "timestamp": _stamp()}  # fmt: skip
                messages.append(["execution_error", failure])
                status = {"status_str": "error", "completed": False, "messages": messages}
                self.history[prompt_id] = {"prompt": [0, prompt_id, graph, {}, []], "outputs": {}, "status": status}
                return
            count = latent["batch_size"] - (1 if self.mode == "fewer_images" else 0)
            images = [{"filename": f"ComfyUI_{prompt_id[:8]}_{i}.png", "subfolder": "", "type": "output"}
                      for i in range(count)]  # fmt: skip
            messages.append(["execution_success", {"prompt_id": prompt_id, "timestamp": _stamp()}])
            status = {"status_str": "success", "completed": True, "messages": messages}
            self.history[prompt_id] = {
                "prompt": [0, prompt_id, graph, {}, ["9"]],
                "outputs": {"9": {"images": images}},
                "status": status,
                "meta": {"9": {"node_id": "9", "display_node": "9"}},
            }

    async def get_history(self, request: web.Request) -> web.Response:
        prompt_id = request.match_info["prompt_id"]
        entry = self.history.get(prompt_id)
        return web.json_response({prompt_id: entry} if entry is not None else {})


@asynccontextmanager
async def fake_comfyui(fake: FakeComfyUI) -> AsyncIterator[str]:
    async with serving(fake.app()) as url:
        yield url


# An API-format text-to-image workflow as ComfyUI's "Export (API)" writes it (SD-style graph; a Flux graph has
# the same latent node inputs and a KSampler or BasicScheduler with steps).
WORKFLOW: dict[str, Any] = {
    "3": {
        "class_type": "KSampler",
        "inputs": {
            "seed": 156680208700286,
            "steps": 20,
            "cfg": 8,
            "sampler_name": "euler",
            "scheduler": "normal",
            "denoise": 1,
            "model": ["4", 0],
            "positive": ["6", 0],
            "negative": ["7", 0],
            "latent_image": ["5", 0],
        },
    },
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "flux1-dev-fp8.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "{prompt}", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}},
}
