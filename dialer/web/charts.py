"""Small server-side SVG charts for the report pages: bars with a target line, and a line chart.

The SVG is inline in the page (no scripts, no external assets), styled with CSS classes from
``static/console.css`` so it passes the console's Content-Security-Policy (no inline styles).
Every chart has a ``<title>`` and per-mark ``<title>`` tooltips for screen readers and hover.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup

__all__ = ["bar_chart", "line_chart"]

_W, _H = 720, 260
_LEFT, _RIGHT, _TOP, _BOTTOM = 48, 28, 16, 44


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    for step in (1, 2, 2.5, 5, 10):
        for scale in (0.001, 0.01, 0.1, 1, 10, 100, 1000, 10000, 100000):
            top = step * scale
            if top >= value:
                return top
    return value


def _fmt(value: float, percent: bool) -> str:
    if percent:
        return f"{value * 100:.1f}%" if value * 100 < 10 else f"{value * 100:.0f}%"
    return f"{value:g}" if value == int(value) else f"{value:.1f}"


def _axes(title: str, top: float, percent: bool) -> list[str]:
    parts = [
        f'<svg class="chart" viewBox="0 0 {_W} {_H}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    plot_h = _H - _TOP - _BOTTOM
    for i in range(5):
        value = top * i / 4
        y = _TOP + plot_h - plot_h * i / 4
        parts.append(f'<line class="grid" x1="{_LEFT}" y1="{y:.1f}" x2="{_W - _RIGHT}" y2="{y:.1f}"/>')
        parts.append(
            f'<text class="axis" x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(value, percent)}</text>'
        )
    return parts


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str,
    target: float | None = None,
    target_label: str = "target",
    percent: bool = False,
    highlight_below: float | None = None,
) -> Markup:
    """Vertical bars, one per label; an optional dashed target line; bars under it shaded."""
    if not labels:
        return Markup('<p class="empty">No data for this period.</p>')
    top = _nice_max(max([*values, target or 0.0]))
    parts = _axes(title, top, percent)
    plot_w = _W - _LEFT - _RIGHT
    plot_h = _H - _TOP - _BOTTOM
    slot = plot_w / len(labels)
    bar_w = max(2.0, min(48.0, slot * 0.7))
    every = max(1, round(len(labels) / 24))
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        h = plot_h * (value / top)
        x = _LEFT + slot * i + (slot - bar_w) / 2
        y = _TOP + plot_h - h
        below = highlight_below is not None and value < highlight_below
        cls = "bar below" if below else "bar"
        parts.append(
            f'<rect class="{cls}" x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{max(h, 0.5):.1f}">'
            f"<title>{escape(label)}: {_fmt(value, percent)}</title></rect>"
        )
        if i % every == 0:
            parts.append(
                f'<text class="label" x="{x + bar_w / 2:.1f}" y="{_H - _BOTTOM + 16}" text-anchor="middle">'
                f"{escape(label[:10])}</text>"
            )
    if target is not None:
        y = _TOP + plot_h - plot_h * (target / top)
        parts.append(f'<line class="target" x1="{_LEFT}" y1="{y:.1f}" x2="{_W - _RIGHT}" y2="{y:.1f}"/>')
        parts.append(
            f'<text class="target-label" x="{_W - _RIGHT}" y="{y - 5:.1f}" text-anchor="end">'
            f"{escape(target_label)} {_fmt(target, percent)}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def line_chart(
    labels: Sequence[str],
    values: Sequence[float | None],
    *,
    title: str,
    limit: float | None = None,
    limit_label: str = "limit",
    percent: bool = True,
) -> Markup:
    """A line over time; gaps (None) break the line; an optional red limit line."""
    if not labels or all(v is None for v in values):
        return Markup('<p class="empty">No data for this period.</p>')
    top = _nice_max(max([*(v for v in values if v is not None), (limit or 0.0) * 1.5]))
    parts = _axes(title, top, percent)
    plot_w = _W - _LEFT - _RIGHT
    plot_h = _H - _TOP - _BOTTOM
    step = plot_w / max(1, len(labels) - 1)
    segments: list[list[tuple[float, float]]] = [[]]
    marks: list[str] = []
    every = max(1, round(len(labels) / 12))
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        x = _LEFT + step * i if len(labels) > 1 else _LEFT + plot_w / 2
        if i % every == 0:
            y_label = _H - _BOTTOM + 16
            parts.append(
                f'<text class="label" x="{x:.1f}" y="{y_label}" text-anchor="middle">{escape(label[-5:])}</text>'
            )
        if value is None:
            if segments[-1]:
                segments.append([])
            continue
        y = _TOP + plot_h - plot_h * (value / top)
        segments[-1].append((x, y))
        over = limit is not None and value > limit
        marks.append(
            f'<circle class="{"point over" if over else "point"}" cx="{x:.1f}" cy="{y:.1f}" r="3.5">'
            f"<title>{escape(label)}: {_fmt(value, percent)}</title></circle>"
        )
    for seg in segments:
        if len(seg) > 1:
            points = " ".join(f"{x:.1f},{y:.1f}" for x, y in seg)
            parts.append(f'<polyline class="line" points="{points}"/>')
    parts.extend(marks)
    if limit is not None:
        y = _TOP + plot_h - plot_h * (limit / top)
        parts.append(f'<line class="limit" x1="{_LEFT}" y1="{y:.1f}" x2="{_W - _RIGHT}" y2="{y:.1f}"/>')
        parts.append(
            f'<text class="limit-label" x="{_W - _RIGHT}" y="{y - 5:.1f}" text-anchor="end">'
            f"{escape(limit_label)} {_fmt(limit, percent)}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))
