"""A lean HTTP/1.1 client for the load generator: one origin, keep-alive connections, bodies handed over as they
arrive.

Why not aiohttp here: its request machinery costs about 190 us of CPU per request on this machine's cores, against
80-100 us for this module (tests/benchmarks/test_client_cost.py), and the client shares its cores with the engine
it measures. What an OpenAI-compatible server needs is small: POST and GET with a body of bytes; responses framed by
Content-Length, by the chunked transfer coding or by the connection's close; TLS for https; user:password in the
URL as basic auth; a connect deadline and a no-progress deadline. Body bytes go to the caller's sink from the
protocol's own callback, with the time they arrived, so a streamed event costs no task switch.

Failures are exceptions of three kinds, which the OpenAI layer turns into records: NoConnection (no connection,
or it closed before the response began), NoProgress (nothing arrived within the deadline) and BrokenResponse (not
HTTP, or cut short). A sink that raises ends the exchange with its exception; the connection is then closed.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import time
from collections.abc import Callable
from urllib.parse import unquote, urlsplit

from harness.client.framing import BrokenResponse, Head, NoConnection, NoProgress, OnHead, Response

__all__ = ["BrokenResponse", "HTTPClient", "Head", "NoConnection", "NoProgress"]


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.exchange: Response | None = None
        self.closed = False
        self.progress = 0.0  # loop time of the last byte

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.progress = asyncio.get_running_loop().time()
        exchange = self.exchange
        if exchange is None or exchange.done.done():
            self.close()  # bytes nobody asked for: the connection cannot be trusted again
            return
        try:
            exchange.feed(data)
        except Exception as exc:  # a broken response or a sink that gave up: this exchange ends with it
            exchange.done.set_exception(exc)
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.exchange is not None:
            self.exchange.lost(exc)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class HTTPClient:
    """Requests to one origin (`base_url`'s scheme, host and port) over keep-alive connections, as many at once as
    the caller starts; an idle connection is reused, a new one opened when none is free."""

    def __init__(self, base_url: str, connect_timeout_s: float = 60.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{base_url!r} is not an http:// or https:// URL")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.prefix = parts.path.rstrip("/")
        self.tls = ssl.create_default_context() if parts.scheme == "https" else None
        self.connect_timeout_s = connect_timeout_s
        host = f"[{self.host}]" if ":" in self.host else self.host
        self._fixed = f"Host: {host}:{self.port}\r\n"
        if parts.username is not None:
            user_pass = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            self._fixed += f"Authorization: Basic {base64.b64encode(user_pass).decode()}\r\n"
        self._idle: list[_Connection] = []
        self._all: set[_Connection] = set()

    async def request(
        self,
        method: str,
        path: str,
        body: bytes | None,
        headers: dict[str, str],
        on_head: OnHead,
        no_progress_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> Head:
        """Send one request and read its answer to the end, the body through the sink `on_head` returns."""
        message = self._message(method, path, body, headers)
        connection, reused = await self._connection()
        try:
            return await self._exchange(connection, message, on_head, no_progress_s, clock)
        except NoConnection:
            if not reused:
                raise
        # A kept-alive connection the server had closed while idle: the request never reached it; once more, afresh.
        connection, _ = await self._connection(fresh=True)
        return await self._exchange(connection, message, on_head, no_progress_s, clock)

    def _message(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> bytes:
        lines = [f"{method} {self.prefix}/{path.lstrip('/')} HTTP/1.1\r\n", self._fixed]
        for name, value in headers.items():
            if "\r" in value or "\n" in value:
                raise ValueError(f"header {name} holds a line break")
            lines.append(f"{name}: {value}\r\n")
        if body is not None:
            lines.append(f"Content-Length: {len(body)}\r\n")
        lines.append("\r\n")
        head = "".join(lines).encode("latin-1")
        return head + body if body is not None else head

    async def _connection(self, fresh: bool = False) -> tuple[_Connection, bool]:
        while self._idle and not fresh:
            connection = self._idle.pop()
            if not connection.closed:
                return connection, True
            self._all.discard(connection)
        loop = asyncio.get_running_loop()
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(_Connection, self.host, self.port, ssl=self.tls), self.connect_timeout_s
            )
        except asyncio.TimeoutError:
            raise NoProgress(f"no connection to {self.host}:{self.port} within {self.connect_timeout_s} s") from None
        except OSError as exc:
            raise NoConnection(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        self._all.add(connection)
        return connection, False

    async def _exchange(
        self,
        connection: _Connection,
        message: bytes,
        on_head: OnHead,
        no_progress_s: float,
        clock: Callable[[], float],
    ) -> Head:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Head] = loop.create_future()
        exchange = connection.exchange = Response(on_head, clock, done)
        connection.progress = loop.time()
        timer: asyncio.TimerHandle | None = None

        def watch() -> None:  # one timer per request, moved on only when it comes due
            nonlocal timer
            if done.done():
                return
            if loop.time() - connection.progress >= no_progress_s:
                done.set_exception(NoProgress(f"no progress for {no_progress_s} s"))
                connection.close()
            else:
                timer = loop.call_at(connection.progress + no_progress_s, watch)

        timer = loop.call_at(connection.progress + no_progress_s, watch)
        assert connection.transport is not None
        connection.transport.write(message)
        try:
            head = await done
        except BaseException:
            connection.close()
            self._all.discard(connection)
            raise
        finally:
            timer.cancel()
            connection.exchange = None
        if exchange.reusable and not exchange.buffer and not connection.closed:
            self._idle.append(connection)
        else:
            connection.close()
            self._all.discard(connection)
        return head

    async def close(self) -> None:
        for connection in self._all:
            connection.close()
        self._all.clear()
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports' close callbacks run

    async def __aenter__(self) -> HTTPClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
