"""The transparency report's charts (crowdplatform/integrity/charts.py): the sampling share over time
as an SVG line chart and as a table, and both on /transparency/."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date, timedelta

import pytest
from django.contrib.auth.models import AnonymousUser
from django.template.loader import render_to_string

from crowdplatform.integrity.charts import date_ticks, share_bars, share_over_time, share_table
from crowdplatform.integrity.models import LicenseClass, Submission
from crowdplatform.integrity.report import DayShare, LeaderboardReport, ProviderEntry
from evaluations.models import System
from tests.integrity.conftest import START
from tests.integrity.fixtures_publishing import vote_at

SVG = "{http://www.w3.org/2000/svg}"
DAYS = [date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 5)]  # no battle on the 3rd and 4th


def provider(name: str, days: list[DayShare]) -> ProviderEntry:
    return ProviderEntry(
        name=name,
        slug=name.lower(),
        systems=[],
        prerelease_tested=0,
        battles=sum(day.battles for day in days),
        votes=0,
        battle_share=None,
        days=days,
        released_battles_with_its_systems=0,
        released_battles_given=0,
    )


def report(providers: list[ProviderEntry], days: list[date], name: str = "Open arena") -> LeaderboardReport:
    return LeaderboardReport(
        name=name,
        slug="open-arena",
        study_id=1,
        sampling="active",
        parameters={},
        policy=[],
        providers=providers,
        releases=[],
        battles=0,
        votes=0,
        chain_verified=True,
        days=days,
    )


def shares(values: list[tuple[float, int]], days: list[date] = DAYS) -> list[DayShare]:
    return [
        DayShare(date=day, share=share, battles=battles, mean_probability=None)
        for day, (share, battles) in zip(days, values, strict=True)
    ]


def two_providers() -> LeaderboardReport:
    return report(
        [
            provider("Acme", shares([(0.4, 4), (0.2, 1), (0.3, 3)])),
            provider("Commons", shares([(0.1, 1), (0.2, 1), (0.4, 4)])),
        ],
        DAYS,
    )


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # noqa: S314 (our own markup, parsed to check it is well-formed XML)


def test_points_are_placed_by_date_and_share():
    root = parse(share_over_time(two_providers()))
    assert root.get("viewBox") == "0 0 640 294"  # plot 16..236, date labels, one legend row
    assert root.get("role") == "img"
    assert root.get("aria-label") == (
        "Sampling share over time on Open arena: each provider's daily share of battle appearances, "
        "2026-01-01 to 2026-01-05. The figures are also in the table below the chart."
    )
    # x: 56 to 600 over four days (the 5th is four days after the 1st); y: 236 (0%) to 16 (40%, the top tick).
    assert [line.get("points") for line in root.iter(f"{SVG}polyline")] == [
        "56.0,16.0 192.0,126.0 600.0,71.0",
        "56.0,181.0 192.0,126.0 600.0,16.0",
    ]
    acme, commons = (group for group in root.findall(f"{SVG}g") if group.find(f"{SVG}polyline") is not None)
    polyline = acme.find(f"{SVG}polyline")
    assert (polyline.get("stroke"), polyline.get("stroke-dasharray")) == ("#0072b2", "none")
    polyline = commons.find(f"{SVG}polyline")
    assert (polyline.get("stroke"), polyline.get("stroke-dasharray")) == ("#e69f00", "6 3")
    # Every point has a marker with its figures: circles for the first provider, squares for the second.
    assert [(c.get("cx"), c.get("cy"), c.findtext(f"{SVG}title")) for c in acme.findall(f"{SVG}circle")] == [
        ("56.0", "16.0", "Acme, 2026-01-01: 40.0% (4 battles)"),
        ("192.0", "126.0", "Acme, 2026-01-02: 20.0% (1 battle)"),
        ("600.0", "71.0", "Acme, 2026-01-05: 30.0% (3 battles)"),
    ]
    assert [(p.get("points"), p.findtext(f"{SVG}title")) for p in commons.findall(f"{SVG}polygon")] == [
        ("52.5,177.5 59.5,177.5 59.5,184.5 52.5,184.5", "Commons, 2026-01-01: 10.0% (1 battle)"),
        ("188.5,122.5 195.5,122.5 195.5,129.5 188.5,129.5", "Commons, 2026-01-02: 20.0% (1 battle)"),
        ("596.5,12.5 603.5,12.5 603.5,19.5 596.5,19.5", "Commons, 2026-01-05: 40.0% (4 battles)"),
    ]


def test_axes_have_percentage_gridlines_and_a_few_dates():
    root = parse(share_over_time(two_providers()))
    labels = [(text.get("x"), text.get("y"), text.text) for text in root.findall(f"{SVG}text")]
    assert labels == [
        ("50", "236.0", "0%"),
        ("50", "181.0", "10%"),
        ("50", "126.0", "20%"),
        ("50", "71.0", "30%"),
        ("50", "16.0", "40%"),
        ("56.0", "256", "2026-01-01"),
        ("192.0", "256", "2026-01-02"),
        ("328.0", "256", "2026-01-03"),
        ("464.0", "256", "2026-01-04"),
        ("600.0", "256", "2026-01-05"),
    ]
    gridlines = [line for line in root.findall(f"{SVG}line") if line.get("x1") == "56" and line.get("x2") == "600"]
    assert [line.get("y1") for line in gridlines] == ["236.0", "181.0", "126.0", "71.0", "16.0"]


def test_the_legend_names_each_provider_with_its_line_and_marker():
    root = parse(share_over_time(two_providers()))
    legend = [group for group in root.findall(f"{SVG}g") if group.find(f"{SVG}text") is not None]
    assert [
        (
            group.findtext(f"{SVG}title"),
            group.findtext(f"{SVG}text"),
            group.find(f"{SVG}line").get("stroke"),
            group.find(f"{SVG}line").get("stroke-dasharray"),
        )
        for group in legend
    ] == [("Acme", "Acme", "#0072b2", "none"), ("Commons", "Commons", "#e69f00", "6 3")]
    assert legend[0].find(f"{SVG}circle") is not None
    assert legend[1].find(f"{SVG}polygon") is not None


def test_no_equal_share_reference_line_is_drawn():
    # Sampling is equal per system, not per provider: a flat 1/providers line would mislead.
    svg = str(share_over_time(two_providers()))
    assert "equal" not in svg
    assert "stroke-dasharray" not in svg.replace('stroke-dasharray="none"', "").replace('stroke-dasharray="6 3"', "")


def test_provider_and_leaderboard_names_are_escaped():
    hostile = '<script>alert("x")</script>'
    chart = report(
        [provider(hostile, shares([(0.5, 2), (0.5, 2), (0.5, 2)]))],
        DAYS,
        name='Arena "one" <b>',
    )
    svg = str(share_over_time(chart))
    assert "<script>" not in svg
    assert "<b>" not in svg
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;, 2026-01-01: 50.0% (2 battles)" in svg
    assert 'aria-label="Sampling share over time on Arena &quot;one&quot; &lt;b&gt;: ' in svg
    root = parse(svg)
    assert root.find(f".//{SVG}circle/{SVG}title").text == f"{hostile}, 2026-01-01: 50.0% (2 battles)"


def test_no_days_or_no_providers_draw_nothing():
    assert share_over_time(report([provider("Acme", [])], [])) == ""
    assert share_over_time(report([], DAYS)) == ""


def test_one_day_draws_markers_not_lines():
    day = [date(2026, 1, 1)]
    chart = report(
        [provider("Acme", shares([(0.6, 3)], day)), provider("Commons", shares([(0.4, 2)], day))],
        day,
    )
    root = parse(share_over_time(chart))
    assert list(root.iter(f"{SVG}polyline")) == []
    # In the middle of the plot, at its top: 60% is the highest tick (0, 20, 40, 60%).
    circle = root.find(f"{SVG}g/{SVG}circle")
    assert (circle.get("cx"), circle.get("cy"), circle.findtext(f"{SVG}title")) == (
        "328.0",
        "16.0",
        "Acme, 2026-01-01: 60.0% (3 battles)",
    )
    polygon = [g for g in root.findall(f"{SVG}g") if g.find(f"{SVG}text") is None][1].find(f"{SVG}polygon")
    assert polygon.findtext(f"{SVG}title") == "Commons, 2026-01-01: 40.0% (2 battles)"
    dates = [text.text for text in root.findall(f"{SVG}text") if text.text and text.text.startswith("2026")]
    assert dates == ["2026-01-01"]


def test_hundreds_of_days_stay_small_one_titled_line_per_provider():
    days = [date(2025, 1, 1) + timedelta(days=n) for n in range(400)]
    chart = report(
        [
            provider("Acme", shares([(0.3 + (n % 7) / 100, 6) for n in range(400)], days)),
            provider("Commons", shares([(0.2, 4)] * 400, days)),
        ],
        days,
    )
    svg = str(share_over_time(chart))
    root = parse(svg)
    polylines = list(root.iter(f"{SVG}polyline"))
    assert len(polylines) == 2
    assert [len(line.get("points").split()) for line in polylines] == [400, 400]
    assert [line.findtext(f"{SVG}title") for line in polylines] == [
        "Acme: daily share of battle appearances from 2025-01-01 to 2026-02-04, between 30.0% and 36.0%",
        "Commons: daily share of battle appearances from 2025-01-01 to 2026-02-04, between 20.0% and 20.0%",
    ]
    # No marker per point: only the legend's two, untitled; the other titles name the legend entries.
    assert len(list(root.iter(f"{SVG}circle"))) + len(list(root.iter(f"{SVG}polygon"))) == 2
    assert svg.count("<title>") == 4
    assert len(svg) < 20_000
    dates = [text.text for text in root.findall(f"{SVG}text") if "-" in (text.text or "")]
    assert dates == ["2025-01-01", "2025-03-22", "2025-06-10", "2025-08-28", "2025-11-16", "2026-02-04"]


def test_date_ticks():
    first = date(2026, 1, 1)
    assert date_ticks([first]) == [first]
    assert date_ticks([first, first + timedelta(days=2)]) == [first, date(2026, 1, 2), date(2026, 1, 3)]
    assert date_ticks([first, first + timedelta(days=10)]) == [
        date(2026, 1, 1),
        date(2026, 1, 3),
        date(2026, 1, 5),
        date(2026, 1, 7),
        date(2026, 1, 9),
        date(2026, 1, 11),
    ]


def test_the_table_lists_the_last_thirty_days():
    days = [date(2026, 1, 1) + timedelta(days=n) for n in range(45)]
    chart = report(
        [
            provider("Acme", shares([(n / 100, n) for n in range(45)], days)),
            provider("Commons", shares([(0.25, 2)], days[:1])),  # one day only
        ],
        days,
    )
    table = share_table(chart)
    assert table.providers == ["Acme", "Commons"]
    assert (table.total_days, len(table.rows), table.truncated) == (45, 30, True)
    first, *_, last = table.rows
    assert (first.date, last.date) == (date(2026, 1, 16), date(2026, 2, 14))
    assert [(cell.percent, cell.battles) for cell in first.cells if cell] == [("15.0%", 15)]
    assert first.cells[1] is None

    small = share_table(two_providers())
    assert (small.total_days, len(small.rows), small.truncated) == (3, 3, False)
    assert [[cell.percent for cell in row.cells] for row in small.rows] == [
        ["40.0%", "10.0%"],
        ["20.0%", "20.0%"],
        ["30.0%", "40.0%"],
    ]
    assert share_table(report([], [])).rows == []


# --- On the page --------------------------------------------------------------------------------


@pytest.fixture
def entered(leaderboard, providers) -> dict[str, Submission]:
    """The public study's two systems entered on the leaderboard by two providers."""
    entries = {}
    for name, license_class in (("base-a", LicenseClass.PROPRIETARY), ("base-b", LicenseClass.OPEN_SOURCE)):
        entries[name] = Submission.objects.create(
            leaderboard=leaderboard,
            provider=providers[license_class],
            system=System.objects.get(study=leaderboard.study, name=name),
            license_class=license_class,
            period_start=START,
            registered_at=START,
            window_ends_at=START + timedelta(days=14),
        )
    return entries


@pytest.mark.django_db
def test_the_page_shows_the_chart_and_its_table(leaderboard, entered, make_rater, client):
    for day in (1, 2):
        assert vote_at(make_rater(), leaderboard.study, START + timedelta(days=day, hours=9)) is not None
    html = client.get("/transparency/").content.decode()
    assert '<h3 id="share-over-time-open-arena">Sampling share over time</h3>' in html
    assert html.count('<svg class="chart share-over-time"') == 1
    assert 'aria-label="Sampling share over time on Open Arena: ' in html
    # Commons Lab (base-b) and Gamma AI (base-a) meet in every battle: half the appearances each, each day.
    for name in ("Commons Lab", "Gamma AI"):
        for day in ("2026-01-02", "2026-01-03"):
            assert f"<title>{name}, {day}: 50.0% (1 battle)</title>" in html
    assert html.count("<polyline") == 2
    assert "<summary>The same figures as a table</summary>" in html
    assert '<th scope="col" class="num">Commons Lab</th><th scope="col" class="num">Gamma AI</th>' in html
    # Two systems make one pair: each draw was recorded with probability 1.
    cell = '<td class="num">50.0% (1; p 1.0000)</td>'
    assert f'<tr><th scope="row">2026-01-02</th>{cell}{cell}</tr>' in html
    assert "Share of battles per provider" in html  # the overall bars stay


@pytest.mark.django_db
def test_the_page_says_when_there_is_nothing_to_chart_yet(leaderboard, entered, client):
    html = client.get("/transparency/").content.decode()
    assert "Sampling share over time" in html
    assert "No battle has been drawn yet" in html
    assert "share-over-time" not in html.replace('id="share-over-time-open-arena"', "")


def test_the_page_says_when_the_table_is_cut_to_the_last_thirty_days(rf):
    days = [date(2026, 1, 1) + timedelta(days=n) for n in range(31)]
    chart = report([provider("Acme", shares([(0.5, 2)] * 31, days))], days)
    request = rf.get("/transparency/")
    request.user = AnonymousUser()
    html = render_to_string(
        "integrity/transparency.html",
        {
            "reports": [
                {
                    "report": chart,
                    "bars": share_bars(chart),
                    "share_chart": share_over_time(chart),
                    "share_table": share_table(chart),
                }
            ]
        },
        request=request,
    )
    assert "<summary>The same figures as a table (the last 30 of 31 days)</summary>" in html
    assert "Only the last 30 days are listed; every day is in the" in html
    assert '<th scope="row">2026-01-01</th>' not in html
    assert '<tr><th scope="row">2026-01-31</th><td class="num">50.0% (2)</td></tr>' in html
