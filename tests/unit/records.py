"""Building RequestRecords by hand for the metric tests."""

from __future__ import annotations

from harness.client.openai import RequestRecord


def done(sent: float, times: list[float], prompt: int = 10, out: int | None = None, **kw: object) -> RequestRecord:
    """A completed streamed request: sent at `sent`, content events at `times`, usage `prompt`/`out` tokens."""
    record = RequestRecord(sent=sent, content_times=list(times), prompt_tokens=prompt, status=200, **kw)  # type: ignore[arg-type]
    record.completion_tokens = len(times) if out is None else out
    record.end = times[-1] if times else None
    record.finish_reason = "length"
    return record


def failed(sent: float, error: str, status: int | None = None) -> RequestRecord:
    return RequestRecord(sent=sent, error=error, status=status)
