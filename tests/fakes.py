"""Fakes for what real engines cannot be made to do on demand: HTTP errors, broken and malformed streams.

Used only by the harness's own tests; the suites always talk to real servers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

from harness.server.endpoint import Endpoint


def chunk_event(text: str, finish: str | None = None) -> bytes:
    event = {"choices": [{"index": 0, "text": text, "finish_reason": finish}]}
    return b"data: " + json.dumps(event).encode() + b"\n\n"


USAGE_EVENT = b'data: {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3}}\n\n'


class FakeOpenAIServer:
    """An aiohttp app whose /v1/completions behaves as `mode` says."""

    def __init__(self, mode: str) -> None:
        self.mode = mode

    async def completions(self, request: web.Request) -> web.StreamResponse:
        if self.mode == "http500":
            return web.Response(status=500, text="internal error")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(chunk_event("a"))
        if self.mode == "dies_mid_stream":
            await response.write(b'data: {"choices": [{"te')
            assert request.transport is not None
            request.transport.close()
            return response
        if self.mode == "malformed":
            await response.write(b"data: {not json\n\n")
        elif self.mode == "stalls":
            await asyncio.sleep(2)
        elif self.mode == "error_event":
            await response.write(b'data: {"error": {"message": "boom", "code": 500}}\n\n')
        await response.write(chunk_event("b") + chunk_event("c", "length") + USAGE_EVENT + b"data: [DONE]\n\n")
        return response


@asynccontextmanager
async def fake_server(mode: str) -> AsyncIterator[Endpoint]:
    app = web.Application()
    app.router.add_post("/v1/completions", FakeOpenAIServer(mode).completions)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield Endpoint(f"http://127.0.0.1:{port}", "fake")
    finally:
        await runner.cleanup()


def payload(**extra: Any) -> dict[str, Any]:
    return {"prompt": "x", "max_tokens": 3, "stream": True, **extra}
