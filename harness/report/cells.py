"""HTML table cells as every section of the report writes them."""

from __future__ import annotations

from html import escape
from typing import Any


def _cell(value: Any) -> str:
    if value is None:
        return '<td class="missing">missing</td>'
    if isinstance(value, float):
        return f"<td>{value:,.4g}</td>" if abs(value) < 1e4 else f"<td>{value:,.1f}</td>"
    if isinstance(value, int):
        return f"<td>{value:,}</td>"
    return f'<td class="text">{escape(str(value))}</td>'


def table(headers: list[str], rows: list[list[Any]]) -> str:
    if not rows:
        return "<p>None in this run.</p>"
    head = "".join(f'<th class="text">{escape(h)}</th>' for h in headers)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    # In a scrolling box: a wide table scrolls sideways inside its section instead of running off the page.
    return (
        f'<div class="scroll"><table class="sortable"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'
    )
