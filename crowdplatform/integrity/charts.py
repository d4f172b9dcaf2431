"""Server-rendered SVG for the transparency report (escaped with format_html, no JavaScript)."""

from __future__ import annotations

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from crowdplatform.integrity.report import LeaderboardReport

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
