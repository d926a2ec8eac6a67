"""The SSE parser gives the same events however the bytes are cut."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from harness.client.sse import SSEParser

STREAM = (
    b": keep-alive comment\n\n"
    b'data: {"a": "\xc3\xa9t\xc3\xa9"}\n\n'
    b"data: line one\r\ndata: line two\r\n\r\n"
    b"event: ignored\ndata:no-space\n\n"
    b"data: [DONE]\n\n"
)
EXPECTED = ['{"a": "été"}', "line one\nline two", "no-space", "[DONE]"]


def parse_in_pieces(data: bytes, cuts: list[int]) -> list[str]:
    parser = SSEParser()
    events: list[str] = []
    start = 0
    for cut in [*sorted(cuts), len(data)]:
        events += parser.feed(data[start:cut])
        start = cut
    assert not parser.pending()
    return events


def test_whole_stream() -> None:
    assert parse_in_pieces(STREAM, []) == EXPECTED


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=20))
def test_any_chunking_gives_the_same_events(cuts: list[int]) -> None:
    assert parse_in_pieces(STREAM, cuts) == EXPECTED


def test_a_cut_short_stream_is_pending() -> None:
    parser = SSEParser()
    assert parser.feed(b'data: {"x"') == []
    assert parser.pending()
