"""The request function against fake servers: failures become classified records, never exceptions."""

from __future__ import annotations

import asyncio

import pytest

from harness.client.http import HTTPClient
from harness.client.openai import RequestRecord, send_request
from tests.fakes import WRONG_SHAPES, fake_server, payload


def run(mode: str, timeout_s: float = 5.0, stream: bool = True) -> RequestRecord:
    async def go() -> RequestRecord:
        async with fake_server(mode) as endpoint, HTTPClient(endpoint.base_url) as session:
            body = {**payload(), "stream": stream}
            return await send_request(session, endpoint, "completions", body, no_progress_timeout_s=timeout_s)

    return asyncio.run(go())


def test_a_good_stream_is_recorded_event_by_event() -> None:
    record = run("ok")
    assert record.ok
    assert record.text == "abc"
    assert len(record.content_times) == 3
    assert (record.prompt_tokens, record.completion_tokens) == (5, 3)
    assert record.finish_reason == "length"
    assert record.end == record.content_times[-1] >= record.sent


@pytest.mark.parametrize(
    ("mode", "error", "detail"),
    [
        ("http500", "http", "internal error"),
        ("http429", "http", "too many requests"),
        ("latin1_502", "http", "Passerelle d\ufffdfaillante"),
        ("dies_mid_stream", "stream", ""),
        ("malformed", "stream", ""),
        ("error_event", "stream", "boom"),
    ],
)
def test_failures_are_classified(mode: str, error: str, detail: str) -> None:
    record = run(mode)
    assert not record.ok
    assert record.error == error
    assert detail in record.error_detail


@pytest.mark.parametrize("mode", sorted(WRONG_SHAPES))
def test_an_event_of_the_wrong_shape_is_a_stream_failure_not_an_exception(mode: str) -> None:
    record = run(mode)
    assert record.error == "stream"
    assert "Malformed" in record.error_detail
    assert record.text == "a"  # what arrived before it is kept


def test_a_body_of_the_wrong_shape_is_a_stream_failure() -> None:
    record = run("body_not_object", stream=False)
    assert record.error == "stream"
    assert "the response is [1, 2], not an object" in record.error_detail


def test_http_status_is_kept() -> None:
    assert run("http500").status == 500


def test_a_stalled_stream_times_out_on_no_progress() -> None:
    record = run("stalls", timeout_s=0.3)
    assert record.error == "timeout"
    assert record.text == "a"  # what arrived before the stall is kept


def test_an_event_with_empty_text_is_still_a_generation_step() -> None:
    record = run("partial_utf8")
    assert record.ok
    assert record.text == "abc"
    assert len(record.content_times) == 4, "counted as vllm bench serve counts: every event with choices"


def test_the_chat_role_announcement_is_not_content() -> None:
    async def go() -> RequestRecord:
        async with fake_server("ok") as endpoint, HTTPClient(endpoint.base_url) as session:
            body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "stream": True}
            return await send_request(session, endpoint, "chat", body)

    record = asyncio.run(go())
    assert record.ok
    assert record.text == "ab"
    assert len(record.content_times) == 2
