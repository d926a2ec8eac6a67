"""One request to an OpenAI-compatible server, streamed or not, recorded with monotonic timestamps.

Requests go over harness.client.http (a lean HTTP/1.1 client: the load generator's CPU is taken from the engine it
measures). A request that fails is returned as a RequestRecord with `error` set (HTTP status, timeout, stream error,
connection lost), never raised: failed requests are data. That includes answers of the wrong shape (an event that
is `null`, a choice that is not an object, a usage that is a number, an error body that is not UTF-8, as a proxy
in front of the server may send): a server's bytes never raise out of here. The clock is injected for tests.

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

import msgspec

from harness.client.http import BrokenResponse, Head, HTTPClient, NoConnection, NoProgress
from harness.client.sse import SSEParser
from harness.server.endpoint import Endpoint

Route = Literal["completions", "chat"]
SERVED_BY = "X-LLMQual-Served-By"  # set by the P/D request proxy (harness.deploy.proxy)
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
    served_by: str | None = None  # which instances served it, when a P/D proxy says (X-LLMQual-Served-By)

    @property
    def ok(self) -> bool:
        return self.error is None


class Malformed(ValueError):
    """A response whose JSON is not the shape the OpenAI API gives."""


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Malformed(f"{what} is {json.dumps(value)[:80]}, not an object")
    return value


def _choices(event: dict[str, Any]) -> list[dict[str, Any]]:
    choices = event.get("choices") or []
    if not isinstance(choices, list):
        raise Malformed(f"choices is {json.dumps(choices)[:80]}, not a list")
    return [_object(choice, "a choice") for choice in choices]


def _text(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Malformed(f"{what} is {json.dumps(value)[:80]}, not a string")
    return value


def _content_of(choice: dict[str, Any]) -> str:
    if "text" in choice:
        return _text(choice.get("text"), "a choice's text")
    delta = _object(choice.get("delta") or choice.get("message") or {}, "a choice's delta")
    return _text(delta.get("content"), "a delta's content")


def _announces_role(choice: dict[str, Any]) -> bool:
    """The chat stream's opening event: a delta with the role and no content or finish reason."""
    delta = choice.get("delta")
    return bool(
        isinstance(delta, dict) and "role" in delta and not delta.get("content") and not choice.get("finish_reason")
    )


def _decoded(raw: bytes) -> str:
    """An error body as text, whatever its encoding (a proxy's 502 page may be latin-1)."""
    return raw.decode("utf-8", "replace")


async def send_request(
    client: HTTPClient,
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
    stream = _Stream(record) if body.get("stream") else None
    collected: list[bytes] = []

    def on_head(head: Head) -> Callable[[bytes, float], None]:
        record.status = head.status
        record.served_by = head.headers.get(SERVED_BY.lower())
        if head.status == 200 and stream is not None:
            return stream.feed
        return lambda data, now: collected.append(data)

    try:
        await client.request(
            "POST", PATHS[route], _encode(body), endpoint.headers(), on_head, no_progress_timeout_s, clock
        )
        if record.status != 200:
            record.error, record.error_detail = "http", _decoded(b"".join(collected))[:2000]
        elif stream is not None:
            stream.end()
        else:
            _read_body(json.loads(_decoded(b"".join(collected))), record)
            record.content_times.append(clock())
    except _ErrorEvent:
        pass  # recorded by the stream
    except NoProgress as exc:
        record.error, record.error_detail = "timeout", str(exc)
    except (BrokenResponse, json.JSONDecodeError, Malformed) as exc:
        record.error, record.error_detail = "stream", f"{type(exc).__name__}: {exc}"[:2000]
    except NoConnection as exc:
        record.error, record.error_detail = "connection", str(exc)
    if record.end is None and record.content_times:
        record.end = record.content_times[-1]
    return record


def _read_body(data: Any, record: RequestRecord) -> None:
    record.body = _object(data, "the response")
    choices = _choices(record.body)
    if choices:
        record.text = _content_of(choices[0])
        record.finish_reason = _finish(choices[0], record.finish_reason)
    _read_usage(record.body.get("usage"), record)


def _finish(choice: dict[str, Any], previous: str | None) -> str | None:
    reason = choice.get("finish_reason")
    return _text(reason, "finish_reason") if reason else previous


def _count(usage: dict[str, Any], key: str) -> int | None:
    value = usage.get(key)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise Malformed(f"usage.{key} is {json.dumps(value)[:80]}, not a token count")
    return value


def _read_usage(usage: Any, record: RequestRecord) -> None:
    if usage is None:
        return
    usage = _object(usage, "usage")
    record.prompt_tokens = _count(usage, "prompt_tokens")
    record.completion_tokens = _count(usage, "completion_tokens")


_decode_event = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


def _event(data: str) -> Any:
    """One event's JSON. msgspec's decoder first (a fifth of json's cost per event, the client's main loop cost);
    json's for what only it reads (NaN, Infinity), so the two accept the same documents."""
    try:
        return _decode_event(data)
    except msgspec.DecodeError:
        return json.loads(data)


class _ErrorEvent(Exception):
    """The server streamed an error event: the request has failed, the rest of the stream is not read."""


class _Stream:
    """A streamed answer, read event by event as its bytes arrive (called from the connection's own callback)."""

    def __init__(self, record: RequestRecord) -> None:
        self.record = record
        self.parser = SSEParser()
        self.done = False

    def feed(self, chunk: bytes, now: float) -> None:
        record = self.record
        for data in self.parser.feed(chunk):
            if data == "[DONE]":
                self.done = True
                continue
            event = _object(_event(data), "an event")
            if "error" in event:
                record.error, record.error_detail = "stream", json.dumps(event["error"])[:2000]
                raise _ErrorEvent
            choices = _choices(event)
            if choices and not _announces_role(choices[0]):
                record.content_times.append(now)
            for choice in choices:
                record.text += _content_of(choice)
                record.finish_reason = _finish(choice, record.finish_reason)
            _read_usage(event.get("usage"), record)

    def end(self) -> None:
        if not self.done:
            self.record.error = "stream"
            pending = " mid-event" if self.parser.pending() else ""
            self.record.error_detail = "the stream ended without [DONE]" + pending


def request_once(
    endpoint: Endpoint, route: Route, payload: dict[str, Any], no_progress_timeout_s: float = 60.0
) -> RequestRecord:
    """One request from synchronous code (smoke checks, the CLI): its own event loop and HTTP session."""

    async def go() -> RequestRecord:
        async with HTTPClient(endpoint.base_url, no_progress_timeout_s) as client:
            return await send_request(client, endpoint, route, payload, no_progress_timeout_s)

    return asyncio.run(go())
