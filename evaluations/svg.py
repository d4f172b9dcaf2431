"""Server-rendered SVG charts for the leaderboard: ratings with their intervals, and win rates.

Pure functions from plain values to markup, no JavaScript library. Every element is built with
`format_html`, so text (system names are the client's own words: anything, `<script>` included)
is escaped, and joined with `format_html_join`, which keeps only what is already safe.

Lines and dots are drawn in `currentColor` and labels use the page's chart classes, so the charts
follow the page's colours (dark mode included); the heatmap's cells carry their own fills, with
the value written in each cell so nothing depends on telling colours apart.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

LABEL_CHARS = 24  # longer names are cut with an ellipsis; the full name is in the row's <title>

# Rating chart
CHART_WIDTH = 640
CHART_LABEL_WIDTH = 180
CHART_VALUE_WIDTH = 56
CHART_ROW = 26
CHART_TOP = 8
CHART_AXIS = 28
TICKS_WANTED = 5

# Heatmap
CELL = 46
HEATMAP_LABEL_WIDTH = 190
HEATMAP_HEADER = 130  # room above the grid for the slanted column labels...
HEATMAP_RIGHT = 125  # ...which lean right, past the last column
LEGEND_HEIGHT = 44
LEGEND_WIDTH = 200
# A diverging scale: the row lost every battle (red), even (grey), won every battle (blue).
SCALE_LOW = (180, 35, 24)
SCALE_MID = (242, 244, 247)
SCALE_HIGH = (29, 78, 216)
DARK_TEXT = "#1b1f24"
LIGHT_TEXT = "#ffffff"


@dataclass(frozen=True)
class IntervalEntry:
    """One system's row in the rating chart."""

    name: str
    rating: float
    low: float
    high: float
    provisional: bool = False


def svg_join(parts: Iterable[SafeString]) -> SafeString:
    return format_html_join("", "{}", ((part,) for part in parts))


def label_short(name: str) -> str:
    return name if len(name) <= LABEL_CHARS else name[: LABEL_CHARS - 1] + "…"


def coordinate(value: float) -> str:
    """A coordinate: one decimal is finer than a pixel."""
    return f"{value:.1f}"


def _points(value: float) -> str:
    """A rating as shown: whole points (the intervals are far wider than a point)."""
    return f"{value:.0f}"


# --- Ratings with intervals ---------------------------------------------------------------------


def nice_ticks(low: float, high: float, wanted: int = TICKS_WANTED) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten apart) covering [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)) or high < low:
        raise ValueError("ticks need a finite range, low <= high")
    if high - low < 1e-9:
        low, high = low - 10, high + 10
    raw = (high - low) / max(wanted - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    start = math.floor(low / step) * step
    stop = math.ceil(high / step) * step
    count = round((stop - start) / step)
    return [start + i * step for i in range(count + 1)]


def rating_interval_chart(entries: Sequence[IntervalEntry], *, chart_id: str = "ratings") -> SafeString:
    """One row per system in the order given (best first): a dot at the rating, whiskers to its
    95% interval (dashed when provisional), the rating at the right, an axis with round ticks."""
    if not entries:
        return SafeString("")
    ticks = nice_ticks(min(e.low for e in entries), max(e.high for e in entries))
    left, right = CHART_LABEL_WIDTH, CHART_WIDTH - CHART_VALUE_WIDTH
    span = ticks[-1] - ticks[0]

    def x(value: float) -> float:
        return left + (value - ticks[0]) / span * (right - left)

    plot_bottom = CHART_TOP + len(entries) * CHART_ROW
    height = plot_bottom + CHART_AXIS
    parts = [
        format_html(
            '<svg class="chart leaderboard-chart" role="img" aria-labelledby="{}-title {}-desc" '
            'viewBox="0 0 {} {}" width="100%" xmlns="http://www.w3.org/2000/svg">',
            chart_id,
            chart_id,
            CHART_WIDTH,
            height,
        ),
        format_html('<title id="{}-title">Ratings with 95% intervals</title>', chart_id),
        format_html(
            '<desc id="{}-desc">One row per system, best first: the dot is the rating, the whiskers its 95% '
            "bootstrap interval; dashed whiskers mark provisional ratings (few votes).</desc>",
            chart_id,
        ),
    ]
    for tick in ticks:
        parts.append(
            format_html(
                '<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="currentColor" stroke-opacity="0.15"></line>'
                '<text class="chart-label" x="{}" y="{}" text-anchor="middle">{}</text>',
                coordinate(x(tick)),
                coordinate(x(tick)),
                CHART_TOP,
                plot_bottom,
                coordinate(x(tick)),
                plot_bottom + 18,
                _points(tick),
            )
        )
    for row, entry in enumerate(entries):
        parts.append(_interval_row(entry, CHART_TOP + row * CHART_ROW + CHART_ROW / 2, x))
    parts.append(SafeString("</svg>"))
    return svg_join(parts)


def _interval_row(entry: IntervalEntry, y: float, x: Callable[[float], float]) -> SafeString:
    title = f"{entry.name}: {_points(entry.rating)} (95% interval {_points(entry.low)} to {_points(entry.high)})"
    if entry.provisional:
        title += ", provisional"
    dash = "4 3" if entry.provisional else "none"
    return format_html(
        "<g><title>{}</title>"
        '<text class="chart-label" x="{}" y="{}" text-anchor="end" dominant-baseline="middle">{}</text>'
        '<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="currentColor" stroke-width="2" stroke-dasharray="{}"></line>'
        '<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="currentColor" stroke-width="2"></line>'
        '<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="currentColor" stroke-width="2"></line>'
        '<circle cx="{}" cy="{}" r="4.5" fill="currentColor"></circle>'
        '<text class="chart-value" x="{}" y="{}" text-anchor="end" dominant-baseline="middle">{}</text></g>',
        title,
        CHART_LABEL_WIDTH - 10,
        coordinate(y),
        label_short(entry.name),
        coordinate(x(entry.low)),
        coordinate(x(entry.high)),
        coordinate(y),
        coordinate(y),
        dash,
        coordinate(x(entry.low)),
        coordinate(x(entry.low)),
        coordinate(y - 5),
        coordinate(y + 5),
        coordinate(x(entry.high)),
        coordinate(x(entry.high)),
        coordinate(y - 5),
        coordinate(y + 5),
        coordinate(x(entry.rating)),
        coordinate(y),
        CHART_WIDTH - 4,
        coordinate(y),
        _points(entry.rating),
    )


# --- Win-rate heatmap ---------------------------------------------------------------------------


def scale_colour(share: float) -> tuple[int, int, int]:
    """The fill for a win rate: red at 0, grey at one half, blue at 1 (linear in RGB)."""
    share = min(max(share, 0.0), 1.0)
    start, end, t = (SCALE_LOW, SCALE_MID, share * 2) if share < 0.5 else (SCALE_MID, SCALE_HIGH, share * 2 - 1)
    return tuple(round(a + (b - a) * t) for a, b in zip(start, end, strict=True))  # type: ignore[return-value]


def _hex(colour: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*colour)


def _text_colour(colour: tuple[int, int, int]) -> str:
    """Dark text on light cells, white on dark ones (WCAG relative luminance)."""

    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in colour)
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
    # The luminance where white and #1b1f24 text have equal contrast.
    return DARK_TEXT if luminance > 0.18 else LIGHT_TEXT


def _percent(share: float) -> str:
    return f"{share * 100:.0f}%"


def win_rate_heatmap(
    systems: Sequence[str],
    win_rate: Sequence[Sequence[float | None]],
    battles: Sequence[Sequence[int]],
    *,
    chart_id: str = "win-rate",
) -> SafeString:
    """Row vs column: the share of their battles the row's system won (ties count half), written
    in the cell; empty cells where the two never met. Each cell has its own <title>."""
    count = len(systems)
    if count == 0:
        return SafeString("")
    grid_bottom = HEATMAP_HEADER + count * CELL
    width = HEATMAP_LABEL_WIDTH + count * CELL + HEATMAP_RIGHT
    height = grid_bottom + LEGEND_HEIGHT
    parts = [
        format_html(
            '<svg class="chart leaderboard-heatmap" role="img" aria-labelledby="{}-title {}-desc" '
            'viewBox="0 0 {} {}" width="100%" xmlns="http://www.w3.org/2000/svg">',
            chart_id,
            chart_id,
            max(width, HEATMAP_LABEL_WIDTH + LEGEND_WIDTH + 20),
            height,
        ),
        format_html('<title id="{}-title">Win rates between systems</title>', chart_id),
        format_html(
            "<desc id=\"{}-desc\">Each cell is the share of battles the row's system won against the column's, "
            "ties counting half; empty where the two systems have not met.</desc>",
            chart_id,
        ),
        _scale_gradient(chart_id),
    ]
    for column, name in enumerate(systems):
        cx = HEATMAP_LABEL_WIDTH + column * CELL + CELL / 2
        parts.append(
            format_html(
                '<text class="chart-label" x="{}" y="{}" transform="rotate(-45 {} {})"><title>{}</title>{}</text>',
                coordinate(cx),
                HEATMAP_HEADER - 8,
                coordinate(cx),
                HEATMAP_HEADER - 8,
                name,
                label_short(name),
            )
        )
    for row, name in enumerate(systems):
        y = HEATMAP_HEADER + row * CELL
        parts.append(
            format_html(
                '<text class="chart-label" x="{}" y="{}" text-anchor="end" dominant-baseline="middle">'
                "<title>{}</title>{}</text>",
                HEATMAP_LABEL_WIDTH - 8,
                coordinate(y + CELL / 2),
                name,
                label_short(name),
            )
        )
        for column, opponent in enumerate(systems):
            share = win_rate[row][column]
            played = battles[row][column] if share is not None and row != column else 0
            parts.append(_cell(name, opponent, None if played == 0 else share, played, row, column))
    parts.append(_legend(chart_id, grid_bottom))
    parts.append(SafeString("</svg>"))
    return svg_join(parts)


def _cell(name: str, opponent: str, share: float | None, played: int, row: int, column: int) -> SafeString:
    x = HEATMAP_LABEL_WIDTH + column * CELL
    y = HEATMAP_HEADER + row * CELL
    if share is None:
        title = f"{name} vs itself" if row == column else f"{name} vs {opponent}: no battles yet"
        return format_html(
            '<g><title>{}</title><rect x="{}" y="{}" width="{}" height="{}" fill="none" stroke="currentColor" '
            'stroke-opacity="0.2"></rect></g>',
            title,
            x + 1,
            y + 1,
            CELL - 2,
            CELL - 2,
        )
    colour = scale_colour(share)
    title = f"{name} won {_percent(share)} of {played} battle{'s' if played != 1 else ''} against {opponent}"
    return format_html(
        '<g><title>{}</title><rect x="{}" y="{}" width="{}" height="{}" fill="{}"></rect>'
        '<text x="{}" y="{}" text-anchor="middle" dominant-baseline="middle" font-size="12" fill="{}">{}</text></g>',
        title,
        x + 1,
        y + 1,
        CELL - 2,
        CELL - 2,
        _hex(colour),
        coordinate(x + CELL / 2),
        coordinate(y + CELL / 2),
        _text_colour(colour),
        _percent(share),
    )


def _scale_gradient(chart_id: str) -> SafeString:
    return format_html(
        '<defs><linearGradient id="{}-scale" x1="0" x2="1" y1="0" y2="0">'
        '<stop offset="0" stop-color="{}"></stop><stop offset="0.5" stop-color="{}"></stop>'
        '<stop offset="1" stop-color="{}"></stop></linearGradient></defs>',
        chart_id,
        _hex(SCALE_LOW),
        _hex(SCALE_MID),
        _hex(SCALE_HIGH),
    )


def _legend(chart_id: str, top: int) -> SafeString:
    left = HEATMAP_LABEL_WIDTH
    return format_html(
        '<g aria-hidden="true"><rect x="{}" y="{}" width="{}" height="10" fill="url(#{}-scale)"></rect>'
        '<text class="chart-label" x="{}" y="{}" text-anchor="start">0%</text>'
        '<text class="chart-label" x="{}" y="{}" text-anchor="middle">50%</text>'
        '<text class="chart-label" x="{}" y="{}" text-anchor="end">100%</text>'
        '<text class="chart-label" x="{}" y="{}" text-anchor="end">Row wins</text></g>',
        left,
        top + 12,
        LEGEND_WIDTH,
        chart_id,
        left,
        top + 36,
        left + LEGEND_WIDTH / 2,
        top + 36,
        left + LEGEND_WIDTH,
        top + 36,
        left - 8,
        top + 21,
    )
