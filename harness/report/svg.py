"""Plots as inline SVG strings, drawn here so the report needs no plotting library, no script and no network.

Each plot is `<svg class="plot" data-plot=NAME>` with its data marks classed `mark` (what the browser test looks
for), axes with a few round ticks, a legend, and `<title>` tooltips on points. Pure: data in, text out. Missing
values (None) leave gaps; a plot with no data says so instead of drawing empty axes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

WIDTH, HEIGHT = 640, 340
LEFT, RIGHT, TOP, BOTTOM = 90, 150, 20, 70
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f")


@dataclass
class Series:
    name: str
    points: list[tuple[float, float | None]]
    errors: list[float | None] = field(default_factory=list)  # half-widths of error bars, by point
    dashed: bool = False
    joined: bool = True  # False for categories on x: markers (and error bars) only


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / count
    step = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * step:
            step *= factor
            break
    start = math.floor(low / step) * step
    return [start + i * step for i in range(int((high - start) / step) + 2) if start + i * step <= high + step / 2]


CHAR_PX = 6.6  # the width of one character at the plots' 11 px font, generously (digits and lower case)
LINE_PX = 13


def _wrap(text: str, width: int) -> list[str]:
    """`text` in lines of at most `width` characters, broken after a space, `/`, `,`, `-` or `_` where it can be
    and anywhere where it cannot: a label is shown whole, never cut."""
    lines: list[str] = []
    rest = text
    while len(rest) > width:
        cut = max(rest.rfind(mark, 0, width) for mark in " /,-_")
        cut = cut + 1 if cut > 0 else width
        lines.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    return [*lines, rest] if rest else lines


def _text_lines(x: float, y: float, lines: list[str], anchor: str) -> str:
    spans = "".join(
        f'<tspan x="{x:.1f}" dy="{0 if i == 0 else LINE_PX}">{escape(line)}</tspan>' for i, line in enumerate(lines)
    )
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}">{spans}</text>'


def _label(value: float) -> str:
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.1e}"
    return f"{value:,.3f}".rstrip("0").rstrip(".")


def _empty(name: str, title: str, why: str) -> str:
    return (
        f'<svg class="plot empty" data-plot="{escape(name)}" viewBox="0 0 {WIDTH} 60" role="img">'
        f'<text x="10" y="25" font-weight="bold">{escape(title)}</text>'
        f'<text x="10" y="48" fill="#666">{escape(why)}</text></svg>'
    )


def line_chart(
    name: str,
    title: str,
    series: Sequence[Series],
    x_label: str,
    y_label: str,
    x_names: dict[float, str] | None = None,
    bands: Sequence[tuple[float, float, str]] = (),
) -> str:
    """Lines with markers (and error bars where given). `x_names` labels x positions (e.g. "inf" for a rate);
    `bands` shade spans of x (start, end, what it is) behind the lines: the measured windows over a run."""
    points = [(x, y) for s in series for x, y in s.points if y is not None and math.isfinite(y)]
    if not points:
        return _empty(name, title, "no data in this run")
    spans = [
        (y - (e or 0.0), y + (e or 0.0))
        for s in series
        for (_, y), e in zip(s.points, s.errors or [None] * len(s.points), strict=True)
        if y is not None
    ]
    x_low, x_high = min(x for x, _ in points), max(x for x, _ in points)
    y_low, y_high = min(0.0, min(lo for lo, _ in spans)), max(hi for _, hi in spans)
    x_ticks = sorted(x_names) if x_names else _ticks(x_low, x_high)
    y_ticks = _ticks(y_low, y_high)
    x0, x1 = min(x_low, x_ticks[0]), max(x_high, x_ticks[-1])
    y0, y1 = min(y_low, y_ticks[0]), max(y_high, y_ticks[-1])
    plot_w = WIDTH - LEFT - RIGHT
    # Tick names wrapped to the room between ticks (and, at the ends, to the margin beside them).
    spacing = plot_w / max(1, len(x_ticks) - 1) if len(x_ticks) > 1 else plot_w
    per_line = max(6, int(min(spacing, 2 * LEFT) / CHAR_PX))
    tick_lines = {tick: _wrap((x_names or {}).get(tick, _label(tick)), per_line) for tick in x_ticks}
    extra = LINE_PX * (max(len(lines) for lines in tick_lines.values()) - 1)
    legend = [_wrap(s.name, int((RIGHT - 36) / CHAR_PX)) for s in series]
    legend_h = TOP + 14 + sum(LINE_PX * len(lines) + 5 for lines in legend)
    height = max(HEIGHT + extra, legend_h + 10)
    plot_h = height - TOP - BOTTOM - extra

    def px(x: float) -> float:
        return LEFT + (plot_w * (x - x0) / (x1 - x0) if x1 > x0 else plot_w / 2)

    def py(y: float) -> float:
        return TOP + plot_h - (plot_h * (y - y0) / (y1 - y0) if y1 > y0 else plot_h / 2)

    parts = [
        f'<svg class="plot" data-plot="{escape(name)}" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="{escape(title)}">',
        f'<text x="{LEFT}" y="14" font-weight="bold">{escape(title)}</text>',
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}" stroke="#333"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" stroke="#333"/>',
    ]
    for tick in x_ticks:
        parts.append(_text_lines(px(tick), TOP + plot_h + 16, tick_lines[tick], "middle"))
    for tick in y_ticks:
        parts.append(
            f'<line x1="{LEFT}" y1="{py(tick):.1f}" x2="{LEFT + plot_w}" y2="{py(tick):.1f}" stroke="#eee"/>'
            f'<text x="{LEFT - 6}" y="{py(tick) + 4:.1f}" text-anchor="end">{_label(tick)}</text>'
        )
    parts.append(f'<text x="{LEFT + plot_w / 2}" y="{height - 8}" text-anchor="middle">{escape(x_label)}</text>')
    parts.append(
        f'<text transform="translate(14 {TOP + plot_h / 2}) rotate(-90)" text-anchor="middle">{escape(y_label)}</text>'
    )
    for start, end, what in bands:
        left, right = px(max(start, x0)), px(min(end, x1))
        parts.append(
            f'<rect class="band" x="{left:.1f}" y="{TOP}" width="{max(right - left, 1.0):.1f}" height="{plot_h:.1f}" '
            f'fill="#dce6f2"><title>{escape(what)}</title></rect>'
        )
    for i, s in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        segment: list[str] = []
        paths: list[str] = []
        for x, y in s.points:
            if y is None or not math.isfinite(y):
                paths.append(" ".join(segment))
                segment = []
                continue
            segment.append(f"{'M' if not segment else 'L'}{px(x):.1f},{py(y):.1f}")
        paths.append(" ".join(segment))
        for d in filter(None, paths if s.joined else []):
            parts.append(f'<path class="mark" d="{d}" fill="none" stroke="{colour}" stroke-width="1.8"{dash}/>')
        errors = s.errors or [None] * len(s.points)
        dense = len(s.points) > 60  # long curves: the line alone, no marker per point
        for (x, y), error in zip(s.points, errors, strict=True):
            if y is None or not math.isfinite(y):
                continue
            if error:
                parts.append(
                    f'<line class="mark" x1="{px(x):.1f}" y1="{py(y - error):.1f}" x2="{px(x):.1f}" '
                    f'y2="{py(y + error):.1f}" stroke="{colour}"/>'
                )
            if not dense or not s.joined:
                tip = escape(f"{s.name}: {(x_names or {}).get(x, _label(x))} → {_label(y)}")
                parts.append(
                    f'<circle class="mark" cx="{px(x):.1f}" cy="{py(y):.1f}" r="3.5" fill="{colour}">'
                    f"<title>{tip}</title></circle>"
                )
        legend_y = TOP + 14 + sum(LINE_PX * len(lines) + 5 for lines in legend[:i])
        parts.append(
            f'<line x1="{WIDTH - RIGHT + 10}" y1="{legend_y - 4}" x2="{WIDTH - RIGHT + 28}" y2="{legend_y - 4}" '
            f'stroke="{colour}" stroke-width="2"{dash}/>'
            + _text_lines(WIDTH - RIGHT + 32, legend_y, legend[i], "start")
        )
    parts.append("</svg>")
    return "".join(parts)


LOG_SPAN = 20.0  # from this ratio of the largest to the smallest value on, a distribution's x axis is logarithmic


def _log_ticks(low: float, high: float) -> dict[float, str]:
    """1-2-5 ticks per decade between `low` and `high` (both > 0), keyed by their log10 position."""
    ticks = {}
    for decade in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1):
        for step in (1, 2, 5):
            value = step * 10.0**decade
            if low / 1.5 <= value <= high * 1.5:
                ticks[math.log10(value)] = _label(value)
    return ticks


def cdf_chart(name: str, title: str, samples: dict[str, list[float]], x_label: str) -> str:
    """Distributions as cumulative curves: the share of requests at or under each value, one line per set. Sets
    that span more than LOG_SPAN (a saturated case's latencies beside a light one's) get a logarithmic x axis, so
    no curve is squashed into one column of pixels."""
    finite = {label: sorted(v for v in values if math.isfinite(v)) for label, values in samples.items()}
    every = [v for values in finite.values() for v in values]
    if not every:
        return _empty(name, title, "no measurements in this run")
    positive = [v for v in every if v > 0]
    logarithmic = len(positive) == len(every) and max(every) / min(positive) > LOG_SPAN
    x_of = math.log10 if logarithmic else float
    series = [
        Series(label, [(x_of(v), (i + 1) / len(values)) for i, v in enumerate(values)])
        for label, values in finite.items()
    ]
    names = _log_ticks(min(every), max(every)) if logarithmic else None
    axis = f"{x_label}, log scale" if logarithmic else x_label
    return line_chart(name, title, series, axis, "share of requests", names)
