"""Server-sent events, parsed incrementally from arbitrary byte chunks (the one SSE parser of the harness).

Only what OpenAI-compatible servers send is needed: `data:` fields (joined with newlines when repeated), events
separated by a blank line, comments (`:`) ignored, CRLF or LF line ends. A chunk may end anywhere, even inside a
multi-byte character.
"""

from __future__ import annotations


class SSEParser:
    """Feed bytes, get back the data of every event completed by them."""

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[str]:
        self._buffer += chunk
        events: list[str] = []
        while True:
            cut = self._buffer.find(b"\n")
            if cut < 0:
                return events
            raw, self._buffer = self._buffer[:cut], self._buffer[cut + 1 :]
            line = raw.rstrip(b"\r").decode("utf-8", "replace")
            if not line:
                if self._data:
                    events.append("\n".join(self._data))
                    self._data = []
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            if name == "data":
                self._data.append(value[1:] if value.startswith(" ") else value)

    def pending(self) -> bool:
        """True if bytes or an unterminated event are left over (a stream cut short)."""
        return bool(self._buffer.strip() or self._data)
