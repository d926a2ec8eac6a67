"""Reading one HTTP/1.x response from bytes as they arrive: the head, then the body by its framing
(Content-Length, the chunked transfer coding, or the connection's close), each piece handed to a sink with the time
it arrived. The failures of an HTTP exchange are defined here too (harness.client.http raises them).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

MAX_HEAD = 64 * 1024


class NoConnection(Exception):
    """No connection to the server, or it closed before a response began."""


class NoProgress(Exception):
    """No byte arrived within the no-progress deadline."""


class BrokenResponse(Exception):
    """The answer is not HTTP/1.x, or the connection closed in the middle of it."""


@dataclass(frozen=True)
class Head:
    status: int
    headers: dict[str, str]  # names in lower case


Sink = Callable[[bytes, float], None]  # body bytes and the client clock's time they arrived
OnHead = Callable[[Head], Sink]  # called once the head is in; returns where the body goes


def _head(raw: bytes) -> Head:
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise BrokenResponse(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    headers = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return Head(int(parts[1]), headers)


class Response:
    """One response being read: the head, then the body by its framing, each piece to the sink."""

    def __init__(self, on_head: OnHead, clock: Callable[[], float], done: asyncio.Future[Head]) -> None:
        self.on_head, self.clock, self.done = on_head, clock, done
        self.buffer = b""
        self.head: Head | None = None
        self.sink: Sink | None = None
        self.framing = ""  # "length", "chunked" or "close"
        self.left = 0  # bytes of the body (length) or of the current chunk (chunked) still to come
        self.chunk_end = False  # a chunk's data is in; its CRLF is next
        self.trailers = False  # the last chunk is in; trailer lines until an empty one
        self.complete = False  # the empty line after the trailers is in
        self.reusable = False

    def feed(self, data: bytes) -> None:
        now = self.clock()
        if self.head is None:
            self.buffer += data
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD:
                    raise BrokenResponse(f"a response head longer than {MAX_HEAD} bytes")
                return
            self.head, data, self.buffer = _head(self.buffer[:end]), self.buffer[end + 4 :], b""
            self._frame(self.head)
            self.sink = self.on_head(self.head)
            if self.framing == "length" and self.left == 0:
                self._finish()
                return
        pieces = self._chunked(data) if self.framing == "chunked" else self._plain(data)
        if pieces and self.sink is not None:
            self.sink(pieces[0] if len(pieces) == 1 else b"".join(pieces), now)
        if (self.framing == "length" and self.left == 0) or self.complete:
            self._finish()

    def _frame(self, head: Head) -> None:
        keep_alive = head.headers.get("connection", "").lower() != "close"
        if "chunked" in head.headers.get("transfer-encoding", "").lower():
            self.framing = "chunked"
        elif "content-length" in head.headers:
            self.framing, self.left = "length", int(head.headers["content-length"])
        elif head.status in (204, 304):
            self.framing, self.left = "length", 0
        else:
            self.framing, keep_alive = "close", False
        self.reusable = keep_alive

    def _plain(self, data: bytes) -> list[bytes]:
        if self.framing == "length":
            data = data[: self.left]
            self.left -= len(data)
        return [data] if data else []

    def _chunked(self, data: bytes) -> list[bytes]:
        buffer, pieces = self.buffer + data if self.buffer else data, []
        while buffer:
            if self.left:
                piece = buffer[: self.left]
                pieces.append(piece)
                buffer, self.left = buffer[len(piece) :], self.left - len(piece)
                continue
            if self.chunk_end:
                if len(buffer) < 2:
                    break
                if buffer[:2] != b"\r\n":
                    raise BrokenResponse("a chunk not followed by CRLF")
                buffer, self.chunk_end = buffer[2:], False
                continue
            end = buffer.find(b"\r\n")
            if end < 0:
                break
            line, buffer = buffer[:end], buffer[end + 2 :]
            if self.trailers:
                if not line:
                    self.complete = True
                    break
                continue
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise BrokenResponse(f"a chunk size that is not hex: {line[:40]!r}") from None
            if size == 0:
                self.trailers = True
            else:
                self.left, self.chunk_end = size, True
        self.buffer = buffer
        return pieces

    def _finish(self) -> None:
        if not self.done.done():
            assert self.head is not None
            self.done.set_result(self.head)

    def lost(self, exc: BaseException | None) -> None:
        if self.done.done():
            return
        if self.head is not None and self.framing == "close":
            self._finish()
        elif self.head is None and not self.buffer:
            self.done.set_exception(NoConnection(f"the server closed the connection before answering ({exc})"))
        else:
            self.done.set_exception(BrokenResponse("the connection closed in the middle of the response"))
