"""The leaderboard's SVG charts: well-formed, escaped, one row or cell per value, exact geometry."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from django.utils.safestring import SafeString

from evaluations.svg import (
    DARK_TEXT,
    LIGHT_TEXT,
    SCALE_HIGH,
    SCALE_LOW,
    SCALE_MID,
    IntervalEntry,
    _text_colour,
    nice_ticks,
    rating_interval_chart,
    scale_colour,
    win_rate_heatmap,
)

SVG = "{http://www.w3.org/2000/svg}"
EVIL = '<script>alert("x")</script> & co'


def parsed(markup: str) -> ET.Element:
    return ET.fromstring(markup)  # noqa: S314 (our own markup)


def titles(root: ET.Element) -> list[str]:
    return [element.text or "" for element in root.iter(f"{SVG}title")]


@pytest.mark.parametrize(
    ("low", "high", "ticks"),
    [
        (912.3, 1104.8, [900, 950, 1000, 1050, 1100, 1150]),
        (990.0, 1010.0, [990, 995, 1000, 1005, 1010]),
        (1000.0, 1000.0, [990, 995, 1000, 1005, 1010]),
        (0.0, 1.0, [0.0, 0.5, 1.0]),  # steps are 1, 2 or 5 times a power of ten
        (600.0, 1400.0, [600, 800, 1000, 1200, 1400]),
    ],
)
def test_nice_ticks(low, high, ticks):
    assert nice_ticks(low, high) == pytest.approx(ticks)


def test_nice_ticks_refuse_a_range_that_is_not_one():
    with pytest.raises(ValueError, match="finite range"):
        nice_ticks(10.0, 5.0)


ENTRIES = [
    IntervalEntry("sys-x", 1050.0, 1010.0, 1090.0),
    IntervalEntry("sys-y", 950.0, 910.0, 990.0, provisional=True),
]


def test_rating_chart_has_a_row_per_system_with_its_numbers():
    markup = rating_interval_chart(ENTRIES)

    assert isinstance(markup, SafeString)
    root = parsed(markup)
    assert root.get("viewBox") == "0 0 640 88"  # 8 top + 2 rows of 26 + 28 for the axis
    assert root.get("role") == "img"
    assert titles(root) == [
        "Ratings with 95% intervals",
        "sys-x: 1050 (95% interval 1010 to 1090)",
        "sys-y: 950 (95% interval 910 to 990), provisional",
    ]
    circles = list(root.iter(f"{SVG}circle"))
    # Ticks 900..1100 by 50 span x 180..584: 1050 is at 180 + 150/200 * 404.
    assert [(c.get("cx"), c.get("cy")) for c in circles] == [("483.0", "21.0"), ("281.0", "47.0")]
    whiskers = [line for line in root.iter(f"{SVG}line") if line.get("stroke-dasharray")]
    assert [(w.get("x1"), w.get("x2"), w.get("stroke-dasharray")) for w in whiskers] == [
        ("402.2", "563.8", "none"),
        ("200.2", "361.8", "4 3"),
    ]
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert texts == ["900", "950", "1000", "1050", "1100", "sys-x", "1050", "sys-y", "950"]


def test_rating_chart_escapes_names_and_shortens_long_ones():
    markup = rating_interval_chart([IntervalEntry(EVIL, 1000.0, 990.0, 1010.0)])

    assert "<script>" not in markup
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co" in markup  # the row's full <title>
    root = parsed(markup)
    assert titles(root)[1] == f"{EVIL}: 1000 (95% interval 990 to 1010)"
    label = [t.text for t in root.iter(f"{SVG}text")][-2]
    assert label == '<script>alert("x")</scr…'  # 24 characters with the ellipsis, as text


def test_no_entries_no_chart():
    assert rating_interval_chart([]) == ""
    assert win_rate_heatmap([], [], []) == ""


def test_heatmap_cells_titles_and_empty_pairs():
    systems = ["sys-x", "sys-y", "sys-z"]
    win_rate = [[None, 0.7, 1.0], [0.3, None, None], [0.0, None, None]]
    battles = [[0, 5, 2], [5, 0, 0], [2, 0, 0]]

    markup = win_rate_heatmap(systems, win_rate, battles)

    root = parsed(markup)
    cells = [g for g in root.iter(f"{SVG}g") if g.find(f"{SVG}rect") is not None and g.find(f"{SVG}title") is not None]
    assert [g.find(f"{SVG}title").text for g in cells] == [
        "sys-x vs itself",
        "sys-x won 70% of 5 battles against sys-y",
        "sys-x won 100% of 2 battles against sys-z",
        "sys-y won 30% of 5 battles against sys-x",
        "sys-y vs itself",
        "sys-y vs sys-z: no battles yet",
        "sys-z won 0% of 2 battles against sys-x",
        "sys-z vs sys-y: no battles yet",
        "sys-z vs itself",
    ]
    fills = [g.find(f"{SVG}rect").get("fill") for g in cells]
    assert fills == ["none", "#9db2eb", "#1d4ed8", "#d9a09e", "none", "none", "#b42318", "none", "none"]
    cell_text = [t.text for g in cells for t in g.iter(f"{SVG}text")]
    assert cell_text == ["70%", "100%", "30%", "0%"]
    assert root.find(f"{SVG}defs/{SVG}linearGradient").get("id") == "win-rate-scale"


def test_heatmap_escapes_names():
    markup = win_rate_heatmap([EVIL, "b"], [[None, 0.5], [0.5, None]], [[0, 2], [2, 0]], chart_id="heat")

    assert "<script>" not in markup
    root = parsed(markup)
    assert f"{EVIL} won 50% of 2 battles against b" in titles(root)
    assert root.get("aria-labelledby") == "heat-title heat-desc"


def test_the_colour_scale_and_readable_text():
    assert (scale_colour(0.0), scale_colour(0.5), scale_colour(1.0)) == (SCALE_LOW, SCALE_MID, SCALE_HIGH)
    assert scale_colour(-1.0) == SCALE_LOW
    assert scale_colour(2.0) == SCALE_HIGH
    assert scale_colour(0.25) == (211, 140, 136)
    assert [_text_colour(scale_colour(share)) for share in (0.0, 0.3, 0.5, 0.7, 1.0)] == [
        LIGHT_TEXT,
        DARK_TEXT,
        DARK_TEXT,
        DARK_TEXT,
        LIGHT_TEXT,
    ]
