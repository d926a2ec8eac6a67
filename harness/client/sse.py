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
        """The chunk is split into lines once (a whole stream often arrives in one chunk: splitting it line by
        line, copying the rest each time, cost the client as much as decoding the events)."""
        lines = (self._buffer + chunk).split(b"\n")
        self._buffer = lines.pop()  # the line still open
        events: list[str] = []
        for raw in lines:
            line = raw[:-1] if raw.endswith(b"\r") else raw
            if not line:
                if self._data:
                    events.append("\n".join(self._data))
                    self._data = []
            elif line.startswith(b"data:"):
                value = line[6:] if line.startswith(b"data: ") else line[5:]
                self._data.append(value.decode("utf-8", "replace"))
            elif line == b"data":  # a field without a colon has an empty value
                self._data.append("")
        return events

    def pending(self) -> bool:
        """True if bytes or an unterminated event are left over (a stream cut short)."""
        return bool(self._buffer.strip() or self._data)
