"""The lean HTTP/1.1 client against a fake that answers each request with scripted bytes (a fake: what real servers
send rarely or never on demand, such as a chunk size split across packets or a close in the middle of a body)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.client.http import BrokenResponse, Head, HTTPClient, NoConnection, NoProgress

Answer = list[bytes | float]  # bytes to write, or seconds to wait; the connection closes after "CLOSE"
CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-T: 1\r\n\r\n"


@asynccontextmanager
async def scripted(answers: list[Answer]) -> AsyncIterator[tuple[HTTPClient, list[bytes]]]:
    """A server that reads each request and plays the next answer; yields a client and the requests received."""
    received: list[bytes] = []
    queue = list(answers)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(b"CONNECTION")
        try:
            while queue:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if b"Length" in line), 0)
                received.append(head + await reader.readexactly(length))
                for step in queue.pop(0):
                    if step == b"CLOSE":
                        writer.close()
                        return
                    if isinstance(step, float):
                        await asyncio.sleep(step)
                    else:
                        writer.write(step)
                        await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, HTTPClient(f"http://user:p%40ss@127.0.0.1:{port}/prefix") as client:
        yield client, received


def collect(into: list[bytes]) -> Callable[[Head], Callable[[bytes, float], None]]:
    return lambda head: lambda data, now: into.append(data)


def exchange(answers: list[Answer], requests: int = 1, no_progress_s: float = 5.0) -> tuple[list[bytes], list[bytes]]:
    """(the body bytes each request got, joined; the requests the server received, each new connection marked
    by b"CONNECTION")."""

    async def go() -> tuple[list[bytes], list[bytes]]:
        bodies = []
        async with scripted(answers) as (client, received):
            for _ in range(requests):
                parts: list[bytes] = []
                await client.request("POST", "/v1/x", b'{"a": 1}', {"X-K": "v"}, collect(parts), no_progress_s)
                bodies.append(b"".join(parts))
        return bodies, received

    return asyncio.run(go())


def test_a_chunked_body_is_decoded_and_the_request_is_well_formed() -> None:
    bodies, received = exchange([[CHUNKED]])
    assert bodies == [b"hello world"]
    request = received[1]
    assert request.startswith(b"POST /prefix/v1/x HTTP/1.1\r\n")
    assert b"Authorization: Basic dXNlcjpwQHNz\r\n" in request  # user:p@ss from the URL
    assert b"X-K: v\r\n" in request
    assert request.endswith(b'Content-Length: 8\r\n\r\n{"a": 1}')


@settings(max_examples=40, deadline=None)
@given(st.sets(st.integers(min_value=1, max_value=len(CHUNKED) - 1), max_size=12))
def test_a_chunked_answer_split_anywhere_reads_the_same(cuts: set[int]) -> None:
    edges = [0, *sorted(cuts), len(CHUNKED)]
    pieces: Answer = []
    for a, b in itertools.pairwise(edges):
        pieces += [CHUNKED[a:b], 0.001]
    assert exchange([pieces])[0] == [b"hello world"]


def test_a_kept_alive_connection_serves_the_next_request() -> None:
    length = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    bodies, received = exchange([[length], [CHUNKED]], requests=2)
    assert bodies == [b"ok", b"hello world"]
    assert received.count(b"CONNECTION") == 1


def test_a_body_until_close() -> None:
    assert exchange([[b"HTTP/1.1 200 OK\r\n\r\nall of it", b"CLOSE"]])[0] == [b"all of it"]


def test_a_kept_alive_connection_the_server_closed_is_replaced_once() -> None:
    length = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    # The first connection answers once, then closes while idle; the second request goes out again afresh.
    bodies, received = exchange([[length, b"CLOSE"], [length]], requests=2)
    assert bodies == [b"ok", b"ok"]
    assert received.count(b"CONNECTION") == 2


@pytest.mark.parametrize(
    ("answer", "error", "words"),
    [
        ([b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", b"CLOSE"], BrokenResponse, "middle of the response"),
        ([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"], BrokenResponse, "not hex"),
        ([b"SSH-2.0-OpenSSH\r\n\r\n"], BrokenResponse, "not an HTTP/1.x status line"),
        ([b"CLOSE"], NoConnection, "before answering"),
        ([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 1.0], NoProgress, "no progress for 0.2 s"),
    ],
)
def test_failures_are_named(answer: Answer, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        exchange([answer], no_progress_s=0.2)


def test_a_sink_that_gives_up_ends_the_exchange_with_its_error() -> None:
    class Enough(Exception):
        pass

    def refuse(head: Head) -> Callable[[bytes, float], None]:
        def sink(data: bytes, now: float) -> None:
            raise Enough(data)

        return sink

    async def go() -> None:
        async with scripted([[CHUNKED]]) as (client, _):
            await client.request("GET", "/", None, {}, refuse, 5.0)

    with pytest.raises(Enough):
        asyncio.run(go())


def test_no_server_is_no_connection() -> None:
    async def go() -> None:
        async with HTTPClient("http://127.0.0.1:9") as client:
            await client.request("GET", "/", None, {}, collect([]), 1.0)

    with pytest.raises(NoConnection, match=r"cannot connect to 127\.0\.0\.1:9"):
        asyncio.run(go())


def test_a_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(ValueError, match="not an http"):
        HTTPClient("ftp://example.com")
