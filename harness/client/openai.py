"""One request to an OpenAI-compatible server, streamed or not, recorded with monotonic timestamps.

A request that fails is returned as a RequestRecord with `error` set (HTTP status, timeout, stream error,
connection lost), never raised: failed requests are data. The clock is injected for tests.

A *content event* is a streamed event that carries a generation step: it has choices, even when their text is
empty (a token that ends inside a multi-byte character, a special token). This is the rule `vllm bench serve`
uses, so TTFT and ITL compare with its numbers. Two events carry no step and are not content: the trailing usage
event (no choices) and the chat stream's opening event that only announces the assistant role.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp

from harness.client.sse import SSEParser
from harness.server.endpoint import Endpoint

Route = Literal["completions", "chat"]
PATHS: dict[Route, str] = {"completions": "/v1/completions", "chat": "/v1/chat/completions"}


@dataclass
class RequestRecord:
    """What happened to one request. Times are seconds on the client's monotonic clock.

    `scheduled` is when the load generator meant to send it, `released` when it was free to go (its schedule came
    due), `sent` when it went out (after waiting for a concurrency slot). Loaders fill the first two.
    """

    sent: float = 0.0
    scheduled: float | None = None
    released: float | None = None
    content_times: list[float] = field(default_factory=list)
    end: float | None = None
    text: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    status: int | None = None
    error: str | None = None  # "http", "timeout", "stream", "connection", "deadline", "not_sent"
    error_detail: str = ""
    body: dict[str, Any] | None = None  # the parsed response of a non-streamed request

    @property
    def ok(self) -> bool:
        return self.error is None


def _content_of(choice: dict[str, Any]) -> str:
    if "text" in choice:
        return str(choice.get("text") or "")
    delta = choice.get("delta") or choice.get("message") or {}
    return str(delta.get("content") or "")


def _announces_role(choice: dict[str, Any]) -> bool:
    """The chat stream's opening event: a delta with the role and no content or finish reason."""
    delta = choice.get("delta")
    return bool(delta and "role" in delta and not delta.get("content") and not choice.get("finish_reason"))


async def send_request(
    session: aiohttp.ClientSession,
    endpoint: Endpoint,
    route: Route,
    payload: dict[str, Any],
    no_progress_timeout_s: float = 60.0,
    clock: Callable[[], float] = time.monotonic,
) -> RequestRecord:
    """Send `payload` (model filled in) and record the answer; `stream` in the payload decides the mode."""
    body = {"model": endpoint.model, **payload}
    if body.get("stream"):
        body.setdefault("stream_options", {"include_usage": True})
    record = RequestRecord(sent=clock())
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=no_progress_timeout_s, sock_read=no_progress_timeout_s)
    try:
        async with session.post(
            endpoint.url(PATHS[route]), json=body, headers=endpoint.headers(), timeout=timeout
        ) as response:
            record.status = response.status
            if response.status != 200:
                record.error, record.error_detail = "http", (await response.text())[:2000]
            elif body.get("stream"):
                await _read_stream(response, record, clock)
            else:
                _read_body(await response.json(), record)
                record.content_times.append(clock())
    except asyncio.TimeoutError:
        record.error, record.error_detail = "timeout", f"no progress for {no_progress_timeout_s} s"
    except (aiohttp.ClientPayloadError, json.JSONDecodeError, aiohttp.ContentTypeError) as exc:
        record.error, record.error_detail = "stream", str(exc)
    except aiohttp.ClientError as exc:
        record.error, record.error_detail = "connection", str(exc)
    if record.end is None and record.content_times:
        record.end = record.content_times[-1]
    return record


def _read_body(data: dict[str, Any], record: RequestRecord) -> None:
    record.body = data
    choices = data.get("choices") or []
    if choices:
        record.text = _content_of(choices[0])
        record.finish_reason = choices[0].get("finish_reason")
    _read_usage(data.get("usage"), record)


def _read_usage(usage: dict[str, Any] | None, record: RequestRecord) -> None:
    if usage:
        record.prompt_tokens = usage.get("prompt_tokens")
        record.completion_tokens = usage.get("completion_tokens")


async def _read_stream(response: aiohttp.ClientResponse, record: RequestRecord, clock: Callable[[], float]) -> None:
    parser = SSEParser()
    done = False
    async for chunk in response.content.iter_any():
        now = clock()
        for data in parser.feed(chunk):
            if data == "[DONE]":
                done = True
                continue
            event = json.loads(data)
            if "error" in event:
                record.error, record.error_detail = "stream", json.dumps(event["error"])[:2000]
                return
            choices = event.get("choices") or []
            if choices and not _announces_role(choices[0]):
                record.content_times.append(now)
            for choice in choices:
                record.text += _content_of(choice)
                if choice.get("finish_reason"):
                    record.finish_reason = choice["finish_reason"]
            _read_usage(event.get("usage"), record)
    if not done:
        record.error = "stream"
        record.error_detail = "the stream ended without [DONE]" + (" mid-event" if parser.pending() else "")


def request_once(
    endpoint: Endpoint, route: Route, payload: dict[str, Any], no_progress_timeout_s: float = 60.0
) -> RequestRecord:
    """One request from synchronous code (smoke checks, the CLI): its own event loop and HTTP session."""

    async def go() -> RequestRecord:
        async with aiohttp.ClientSession() as session:
            return await send_request(session, endpoint, route, payload, no_progress_timeout_s)

    return asyncio.run(go())
