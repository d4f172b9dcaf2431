"""Server-rendered SVG for the transparency report (escaped with format_html, no JavaScript).

Provider names are the providers' own words: every text goes through format_html/format_html_join.
Axes, gridlines and labels use currentColor and the page's chart classes, as evaluations/svg.py does,
so the charts follow the page's colours (dark mode included).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from crowdplatform.integrity.report import DayShare, LeaderboardReport
from evaluations.svg import coordinate, label_short, nice_ticks, svg_join

ROW = 26
LABEL_WIDTH = 180
BAR_WIDTH = 360
COLOURS = {"proprietary": "#8c5cc4", "open_weights": "#2f7fc1", "open_source": "#2e9d5b"}


def share_bars(report: LeaderboardReport) -> SafeString:
    """One bar per provider: its share of all battle appearances, coloured by its systems' license
    class (mixed: grey), with the figure written beside it."""
    if not report.providers:
        return SafeString("")
    height = ROW * len(report.providers) + 10
    rows = []
    for index, provider in enumerate(report.providers):
        share = provider.battle_share or 0.0
        classes = {system.license_class for system in provider.systems}
        colour = COLOURS.get(next(iter(classes)), "#888888") if len(classes) == 1 else "#888888"
        y = 5 + index * ROW
        width = max(share * BAR_WIDTH, 1.0)  # numbers formatted here: format_html escapes its arguments
        rows.append(
            (
                LABEL_WIDTH - 8,
                y + 16,
                provider.name,
                LABEL_WIDTH,
                y + 4,
                f"{width:.1f}",
                colour,
                provider.name,
                f"{share:.1%}",
                f"{LABEL_WIDTH + width + 6:.1f}",
                y + 16,
                f"{share:.1%}",
            )
        )
    body = format_html_join(
        "",
        '<text x="{}" y="{}" text-anchor="end" font-size="13">{}</text>'
        '<rect x="{}" y="{}" width="{}" height="16" fill="{}"><title>{}: {} of battle appearances</title></rect>'
        '<text x="{}" y="{}" font-size="12">{}</text>',
        rows,
    )
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{}" height="{}" viewBox="0 0 {} {}" '
        'aria-label="Share of battle appearances per provider">{}</svg>',
        LABEL_WIDTH + BAR_WIDTH + 70,
        height,
        LABEL_WIDTH + BAR_WIDTH + 70,
        height,
        body,
    )


# --- Sampling share over time -------------------------------------------------------------------

SERIES_WIDTH = 640
SERIES_LEFT = 56  # room for the percentage labels
SERIES_RIGHT = 40  # the last date label is centred on the plot's right edge
SERIES_TOP = 16  # half a label above the top gridline
SERIES_PLOT_HEIGHT = 220
SERIES_AXIS = 34  # date labels under the plot
LEGEND_ROW = 20
LEGEND_COLUMNS = 3
LEGEND_LEFT = 16  # wider columns than under the plot alone: a 24-character name fits in the last one
DATE_TICKS_WANTED = 6
TITLED_POINTS_MAX_DAYS = 120  # beyond this, one <title> per line keeps the markup small
TABLE_DAYS = 30
# Okabe-Ito (told apart by most colour-blind readers), without its yellow (too pale on white); the
# last one follows the page's text colour, dark mode included.
SERIES_COLOURS = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "currentColor")
# Colour is never the only cue: each line also has its dash pattern and marker shape. With 7 colours
# and 4 patterns (coprime), the first 28 providers all look different.
SERIES_DASHES = ("none", "6 3", "2 3", "8 3 2 3")
SERIES_MARKERS = ("circle", "square", "triangle", "diamond")


@dataclass(frozen=True)
class SeriesStyle:
    colour: str
    dash: str
    marker: str


def series_style(index: int) -> SeriesStyle:
    return SeriesStyle(
        colour=SERIES_COLOURS[index % len(SERIES_COLOURS)],
        dash=SERIES_DASHES[index % len(SERIES_DASHES)],
        marker=SERIES_MARKERS[index % len(SERIES_MARKERS)],
    )


@dataclass(frozen=True)
class _Frame:
    """Where a day and a share land in the plot."""

    first: date
    span_days: int
    top: float  # the share at the top of the plot

    @property
    def right(self) -> int:
        return SERIES_WIDTH - SERIES_RIGHT

    @property
    def bottom(self) -> int:
        return SERIES_TOP + SERIES_PLOT_HEIGHT

    def x(self, day: date) -> float:
        if self.span_days == 0:
            return (SERIES_LEFT + self.right) / 2
        # By date, not by index: days without any battle are missing from the report; a gap is a longer segment.
        return SERIES_LEFT + (day - self.first).days / self.span_days * (self.right - SERIES_LEFT)

    def y(self, share: float) -> float:
        return self.bottom - share / self.top * SERIES_PLOT_HEIGHT


def share_over_time(report: LeaderboardReport) -> SafeString:
    """One line per provider: its share of each day's battle appearances, dated along the x axis,
    with percentage gridlines, a legend and a <title> per point (per line when there are many days).

    No "equal share" reference line: sampling is equal per *system*, not per provider, so a provider
    with three systems rightly gets about three times the share of a provider with one, and systems
    no provider entered take part of each day's appearances too. A flat 1/len(providers) line would
    make fair sampling look unfair; the page says this in words instead."""
    if not report.days or not report.providers:
        return SafeString("")
    days = sorted(report.days)
    ticks = _share_ticks(report)
    frame = _Frame(first=days[0], span_days=(days[-1] - days[0]).days, top=ticks[-1])
    legend_top = frame.bottom + SERIES_AXIS
    legend_rows = -(-len(report.providers) // LEGEND_COLUMNS)
    height = legend_top + legend_rows * LEGEND_ROW + 4
    label = (
        f"Sampling share over time on {report.name}: each provider's daily share of battle appearances, "
        f"{days[0]:%Y-%m-%d} to {days[-1]:%Y-%m-%d}. The figures are also in the table below the chart."
    )
    titled_points = len(days) <= TITLED_POINTS_MAX_DAYS
    parts = [
        format_html(
            '<svg class="chart share-over-time" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{}" '
            'viewBox="0 0 {} {}" width="100%">',
            label,
            SERIES_WIDTH,
            height,
        ),
        _share_axis(ticks, frame),
        _date_axis(days, frame),
        *(
            _series(provider.name, provider.days, series_style(index), frame, titled_points=titled_points)
            for index, provider in enumerate(report.providers)
        ),
        _series_legend([provider.name for provider in report.providers], legend_top),
        SafeString("</svg>"),
    ]
    return svg_join(parts)


def _share_ticks(report: LeaderboardReport) -> list[float]:
    highest = max((day.share for provider in report.providers for day in provider.days), default=0.0)
    # A floor keeps an all-zero chart drawable and a tiny share from filling the whole height.
    return nice_ticks(0.0, max(highest, 0.05), wanted=6)


def _tick_percent(tick: float, step: float) -> str:
    decimals = 0 if step >= 0.01 - 1e-12 else 1
    return f"{tick * 100:.{decimals}f}%"


def _share_axis(ticks: list[float], frame: _Frame) -> SafeString:
    step = ticks[1] - ticks[0]
    return format_html_join(
        "",
        '<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="currentColor" stroke-opacity="{}"></line>'
        '<text class="chart-label" x="{}" y="{}" text-anchor="end" dominant-baseline="middle">{}</text>',
        (
            (
                SERIES_LEFT,
                frame.right,
                coordinate(frame.y(tick)),
                coordinate(frame.y(tick)),
                "0.6" if index == 0 else "0.15",  # the zero line is the axis
                SERIES_LEFT - 6,
                coordinate(frame.y(tick)),
                _tick_percent(tick, step),
            )
            for index, tick in enumerate(ticks)
        ),
    )


def date_ticks(days: list[date], wanted: int = DATE_TICKS_WANTED) -> list[date]:
    """At most `wanted` evenly spaced dates from the first day to the last, both included."""
    first, last = days[0], days[-1]
    span = (last - first).days
    intervals = min(wanted - 1, span)
    if intervals == 0:
        return [first]
    return sorted({first + timedelta(days=round(i * span / intervals)) for i in range(intervals + 1)})


def _date_axis(days: list[date], frame: _Frame) -> SafeString:
    return format_html_join(
        "",
        '<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="currentColor" stroke-opacity="0.6"></line>'
        '<text class="chart-label" x="{}" y="{}" text-anchor="middle">{}</text>',
        (
            (
                coordinate(frame.x(tick)),
                coordinate(frame.x(tick)),
                frame.bottom,
                frame.bottom + 5,
                coordinate(frame.x(tick)),
                frame.bottom + 20,
                f"{tick:%Y-%m-%d}",
            )
            for tick in date_ticks(days)
        ),
    )


def _point_title(name: str, day: DayShare) -> str:
    return f"{name}, {day.date:%Y-%m-%d}: {day.share:.1%} ({day.battles} battle{'' if day.battles == 1 else 's'})"


def _series(name: str, days: list[DayShare], style: SeriesStyle, frame: _Frame, *, titled_points: bool) -> SafeString:
    days = sorted(days, key=lambda day: day.date)
    if not days:
        return SafeString("")
    parts = [SafeString("<g>")]
    if frame.span_days > 0 and len(days) > 1:  # a single day would make a degenerate line: markers only
        points = " ".join(f"{coordinate(frame.x(day.date))},{coordinate(frame.y(day.share))}" for day in days)
        title = (
            SafeString("")
            if titled_points
            else format_html(
                "<title>{}: daily share of battle appearances from {} to {}, between {} and {}</title>",
                name,
                f"{days[0].date:%Y-%m-%d}",
                f"{days[-1].date:%Y-%m-%d}",
                f"{min(day.share for day in days):.1%}",
                f"{max(day.share for day in days):.1%}",
            )
        )
        parts.append(
            format_html(
                '<polyline points="{}" fill="none" stroke="{}" stroke-width="{}" stroke-dasharray="{}" '
                'stroke-linejoin="round">{}</polyline>',
                points,
                style.colour,
                "2" if titled_points else "1.25",  # hundreds of days: thinner lines stay apart
                style.dash,
                title,
            )
        )
    if titled_points:
        parts.extend(_marker(style, frame.x(day.date), frame.y(day.share), _point_title(name, day)) for day in days)
    parts.append(SafeString("</g>"))
    return svg_join(parts)


def _marker(style: SeriesStyle, x: float, y: float, title: str = "") -> SafeString:
    inner = format_html("<title>{}</title>", title) if title else SafeString("")
    if style.marker == "circle":
        return format_html(
            '<circle cx="{}" cy="{}" r="3.5" fill="{}">{}</circle>', coordinate(x), coordinate(y), style.colour, inner
        )
    shapes = {
        "square": ((-3.5, -3.5), (3.5, -3.5), (3.5, 3.5), (-3.5, 3.5)),
        "triangle": ((0.0, -4.5), (4.0, 3.0), (-4.0, 3.0)),
        "diamond": ((0.0, -4.5), (4.5, 0.0), (0.0, 4.5), (-4.5, 0.0)),
    }
    points = " ".join(f"{coordinate(x + dx)},{coordinate(y + dy)}" for dx, dy in shapes[style.marker])
    return format_html('<polygon points="{}" fill="{}">{}</polygon>', points, style.colour, inner)


def _series_legend(names: list[str], top: int) -> SafeString:
    column_width = (SERIES_WIDTH - LEGEND_LEFT) / LEGEND_COLUMNS
    entries = []
    for index, name in enumerate(names):
        style = series_style(index)
        x = LEGEND_LEFT + (index % LEGEND_COLUMNS) * column_width
        y = top + (index // LEGEND_COLUMNS) * LEGEND_ROW + LEGEND_ROW / 2
        entries.append(
            format_html(
                '<g><title>{}</title><line x1="{}" x2="{}" y1="{}" y2="{}" stroke="{}" stroke-width="2" '
                'stroke-dasharray="{}"></line>{}<text class="chart-label" x="{}" y="{}" dominant-baseline="middle">'
                "{}</text></g>",
                name,
                coordinate(x),
                coordinate(x + 28),
                coordinate(y),
                coordinate(y),
                style.colour,
                style.dash,
                _marker(style, x + 14, y),
                coordinate(x + 34),
                coordinate(y),
                label_short(name),
            )
        )
    return svg_join(entries)


# --- The same figures as a table ----------------------------------------------------------------


@dataclass(frozen=True)
class ShareCell:
    share: float
    battles: int
    mean_probability: float | None = None  # the sampling probability recorded for its systems' draws

    @property
    def percent(self) -> str:
        return f"{self.share:.1%}"


@dataclass(frozen=True)
class ShareRow:
    date: date
    cells: list[ShareCell | None]  # one per provider, in the report's order; None: no figure that day


@dataclass(frozen=True)
class ShareTable:
    providers: list[str]
    rows: list[ShareRow]  # oldest first, the last `len(rows)` days of the report
    total_days: int

    @property
    def truncated(self) -> bool:
        return len(self.rows) < self.total_days


def share_table(report: LeaderboardReport, *, last: int = TABLE_DAYS) -> ShareTable:
    """The chart's figures, day by day and provider by provider, for the last `last` report days."""
    days = sorted(report.days)
    by_provider = [{day.date: day for day in provider.days} for provider in report.providers]
    rows = [
        ShareRow(
            date=day,
            cells=[
                ShareCell(
                    share=shares[day].share, battles=shares[day].battles, mean_probability=shares[day].mean_probability
                )
                if day in shares
                else None
                for shares in by_provider
            ],
        )
        for day in days[-last:]
    ]
    return ShareTable(providers=[provider.name for provider in report.providers], rows=rows, total_days=len(days))
