"""Fakes for what real engines cannot be made to do on demand: HTTP errors, broken and malformed streams, and a
stream faster than any real server (to measure the client's own ceiling).

Used only by the harness's own tests; the suites always talk to real servers. Run as a module
(`python -m tests.fakes --mode fast --port-file F`) the fake serves from its own process, so a benchmark can give
the client a core of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, AbstractContextManager, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from harness.server.endpoint import Endpoint


def chunk_event(text: str, finish: str | None = None) -> bytes:
    event = {"choices": [{"index": 0, "text": text, "finish_reason": finish}]}
    return b"data: " + json.dumps(event).encode() + b"\n\n"


def chat_event(delta: dict[str, str], finish: str | None = None) -> bytes:
    event = {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + json.dumps(event).encode() + b"\n\n"


def usage_event(prompt: int, completion: int) -> bytes:
    usage = {"prompt_tokens": prompt, "completion_tokens": completion}
    return b"data: " + json.dumps({"choices": [], "usage": usage}).encode() + b"\n\n"


USAGE_EVENT = usage_event(5, 3)
# Events that are valid JSON of the wrong shape, by fake mode.
WRONG_SHAPES: dict[str, bytes] = {
    "null_event": b"null",
    "null_choice": b'{"choices": [null]}',
    "choices_not_list": b'{"choices": 7}',
    "text_not_string": b'{"choices": [{"index": 0, "text": {"a": 1}}]}',
    "bad_usage": b'{"choices": [], "usage": 5}',
}
DONE = b"data: [DONE]\n\n"
T = TypeVar("T")


class FakeOpenAIServer:
    """An aiohttp app whose /v1/completions and /v1/chat/completions behave as `mode` says.

    Modes: ok (three events "a" "b" "c"), fast (max_tokens events of "x", at once), http500, http429,
    latin1_502 (a proxy's error page that is not UTF-8), dies_mid_stream, malformed (not JSON), stalls,
    error_event, partial_utf8 (a content event with empty text, as a token ending inside a multi-byte character
    gives), and JSON of the wrong shape in the middle of the stream: null_event, null_choice, choices_not_list,
    text_not_string, bad_usage. Non-streamed requests get prompt log-probs, except in modes no_logprobs and
    body_not_object (the body is a JSON list). Mode apig is fast behind an API gateway: every route answers 401
    without the X-Apig-AppCode header APP_CODE. Mode spec is fast with three tokens per event after the first,
    as a speculative-decoding server streams. Mode paced sends max_tokens events of "x" 2 ms apart (a stream
    whose per-token latency can be measured); fast sends them in one write, as a starved API process flushes a
    burst (TPOT and ITL unmeasurable).
    """

    APP_CODE = "fake-app-code-0123456789"

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.requests = 0  # generation requests received, for GET /stats (a benchmark's steady-state window)

    def _refused(self, request: web.Request) -> bool:
        return self.mode == "apig" and request.headers.get("X-Apig-AppCode") != self.APP_CODE

    async def completions(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        if self._refused(request):
            return web.Response(status=401, text="APIG.0101 app code missing")
        if self.mode == "http500":
            return web.Response(status=500, text="internal error")
        if self.mode == "http429":
            return web.Response(status=429, text="too many requests")
        if self.mode == "latin1_502":
            return web.Response(status=502, body="Passerelle défaillante".encode("latin-1"))
        body = await request.json()
        if not body.get("stream") and self.mode == "body_not_object":
            return web.json_response([1, 2])
        if not body.get("stream"):
            # Non-streamed answers are only needed for the log-likelihood probe: with or without prompt logprobs.
            logprobs = {"token_logprobs": [None, -1.5, -0.25], "tokens": ["a", "b", "c"]}
            choice = {"index": 0, "text": "abc", "logprobs": None if self.mode == "no_logprobs" else logprobs}
            return web.json_response({"choices": [choice], "usage": {"prompt_tokens": 2, "completion_tokens": 1}})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if self.mode == "spec":
            n = int(body.get("max_tokens", 16))
            events = [chunk_event("x")] + [chunk_event("xxx") for _ in range((n - 1) // 3)]
            events[-1] = chunk_event("x" * (1 if len(events) == 1 else 3), "length")
            await response.write(b"".join(events) + usage_event(5, 1 + 3 * (len(events) - 1)) + DONE)
            return response
        if self.mode == "paced":
            n = int(body.get("max_tokens", 16))
            for i in range(n):
                await response.write(chunk_event("x", "length" if i == n - 1 else None))
                await asyncio.sleep(0.002)
            await response.write(usage_event(5, n) + DONE)
            return response
        if self.mode in ("fast", "apig"):
            n = int(body.get("max_tokens", 16))
            await response.write(chunk_event("x") * (n - 1) + chunk_event("x", "length") + usage_event(5, n) + DONE)
            return response
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
        elif self.mode == "partial_utf8":
            await response.write(chunk_event(""))
        elif self.mode in WRONG_SHAPES:
            await response.write(b"data: " + WRONG_SHAPES[self.mode] + b"\n\n")
        await response.write(chunk_event("b") + chunk_event("c", "length") + USAGE_EVENT + DONE)
        return response

    async def chat(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        events = chat_event({"role": "assistant", "content": ""}) + chat_event({"content": "a"})
        events += chat_event({"content": "b"}, "length") + USAGE_EVENT + DONE
        await response.write(events)
        return response

    async def models(self, request: web.Request) -> web.Response:
        if self._refused(request):
            return web.Response(status=401, text="APIG.0101 app code missing")
        return web.json_response({"object": "list", "data": [{"id": "fake", "max_model_len": 4096}]})

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response({"requests": self.requests})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_get("/stats", self.stats)
        return app


# A fake `docker` CLI (named as a fake: no container runs). It logs each call to $FAKE_DOCKER_LOG, the environment
# of `run` and `exec` beside it, and keeps the containers it "runs" (name and owner label) so `ps` lists them until
# `rm`. `exec` fails as a missing card would (the metadata probe is refused); FAKE_DOCKER_FAIL=run makes `run` fail.
FAKE_DOCKER = """#!/bin/bash
echo "$*" >> "$FAKE_DOCKER_LOG"
state="$FAKE_DOCKER_LOG.containers"
case "$1" in
  run)
    env > "$FAKE_DOCKER_LOG.run-env"
    if [ "$FAKE_DOCKER_FAIL" = run ]; then echo "Unable to find image 'nope:1'" >&2; exit 125; fi
    prev=""; name=""; owner=""
    for a in "$@"; do
      [ "$prev" = "--name" ] && name="$a"
      case "$a" in --label=llmqual.owner=*) owner="${a#--label=llmqual.owner=}" ;; esac
      prev="$a"
    done
    printf '%s\t%s\n' "$name" "$owner" >> "$state"
    echo 0123abcd ;;
  exec)
    case "$*" in  # the metadata block's probe: refused, as the rule makes it (FAKE_DOCKER_PROBE=connected: not)
      */dev/tcp/*)
        [ "$FAKE_DOCKER_PROBE" = connected ] && exit 0
        echo "bash: connect: Connection refused" >&2; exit 1 ;;
    esac
    env > "$FAKE_DOCKER_LOG.exec-env"; echo "OCI runtime exec failed: no such device" >&2; exit 126 ;;
  rm) name="${@: -1}"; touch "$state"; grep -v "^$name	" "$state" > "$state.tmp"; mv "$state.tmp" "$state" ;;
  ps) cat "$state" 2>/dev/null ;;
  inspect) echo 4242 ;;
esac
"""
# A fake `iptables` that logs its arguments to $FAKE_IPTABLES_LOG (FAKE_IPTABLES_FAIL=1: refused, as for non-root).
FAKE_IPTABLES = """#!/bin/bash
if [ -n "$FAKE_IPTABLES_FAIL" ]; then echo "iptables: Permission denied (you must be root)." >&2; exit 4; fi
echo "$*" >> "$FAKE_IPTABLES_LOG"
"""


def install_fake_docker(directory: Path) -> tuple[Path, Path]:
    """Write the fake `docker` and `iptables` into `directory/bin`, and a fake /proc entry for the pid the fake
    `docker inspect` gives (4242, in `directory/proc`, with a cgroup v2 path); returns (the bin folder, the docker
    log file). Point harness.runtime.metadata.PROC at `directory/proc` and FAKE_IPTABLES_LOG at a file."""
    bin_dir = directory / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, script in (("docker", FAKE_DOCKER), ("iptables", FAKE_IPTABLES)):
        (bin_dir / name).write_text(script)
        (bin_dir / name).chmod(0o755)
    (directory / "proc" / "4242").mkdir(parents=True, exist_ok=True)
    (directory / "proc" / "4242" / "cgroup").write_text("0::/system.slice/docker-0123abcd.scope\n")
    return bin_dir, directory / "docker.log"


@asynccontextmanager
async def serving(app: web.Application, port: int = 0) -> AsyncIterator[str]:
    """`app` served on 127.0.0.1 (a free port by default); its base URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{bound}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def fake_server(mode: str, port: int = 0) -> AsyncIterator[Endpoint]:
    async with serving(FakeOpenAIServer(mode).app(), port) as url:
        yield Endpoint(url, "fake", max_model_len=4096)


@contextmanager
def in_thread(make: Callable[[], AbstractAsyncContextManager[T]]) -> Iterator[T]:
    """The async context `make()` entered on its own event loop in a thread, for code that runs its own loop
    (asyncio.run) or none; its value, until the with-block ends."""
    loop = asyncio.new_event_loop()
    ready: list[T] = []
    stop = asyncio.Event()
    started = threading.Event()

    async def serve() -> None:
        async with make() as value:
            ready.append(value)
            started.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    if not started.wait(10):
        raise RuntimeError("the fake server did not start within 10 s")
    try:
        yield ready[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)


def fake_server_thread(mode: str) -> AbstractContextManager[Endpoint]:
    """The fake OpenAI server on its own event loop in a thread."""
    return in_thread(lambda: fake_server(mode))


def payload(**extra: Any) -> dict[str, Any]:
    return {"prompt": "x", "max_tokens": 3, "stream": True, **extra}


def main() -> None:
    parser = argparse.ArgumentParser(description="serve a fake OpenAI endpoint until killed")
    parser.add_argument("--mode", default="fast")
    parser.add_argument("--port-file", type=Path, required=True)
    parser.add_argument("--cpu", type=int, default=None, help="pin the fake to this CPU")

    async def serve(args: argparse.Namespace) -> None:
        async with fake_server(args.mode) as endpoint:
            args.port_file.write_text(endpoint.base_url)
            await asyncio.Event().wait()

    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
