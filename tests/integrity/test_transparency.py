"""The public transparency report: its figures (crowdplatform/integrity/report.py), the API and the page."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.files.storage import storages
from django.utils import timezone

from crowdplatform.integrity.models import (
    LicenseClass,
    PeriodRelease,
    PolicyVersion,
    Provider,
    PublicLeaderboard,
    PublishedResult,
    Submission,
)
from crowdplatform.integrity.publishing import period_release
from crowdplatform.integrity.report import transparency_report
from evaluations.models import Study, System, Task, Vote
from tests.evaluations import conftest as evaluations_fixtures

add_systems = evaluations_fixtures.add_systems
make_live_study = evaluations_fixtures.make_live_study
make_rater = evaluations_fixtures.make_rater
make_study = evaluations_fixtures.make_study
upload = evaluations_fixtures.upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def private_storage(settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "private": {**settings.STORAGES["private"], "OPTIONS": {"location": str(tmp_path / "private")}},
    }
    return storages["private"]


SYSTEMS = ("acme-1", "acme-x", "<b>open</b>-7b")


@pytest.fixture
def arena(make_live_study, make_rater) -> dict[str, Any]:
    """A public study with three systems of two providers, each pair voted twice by one rater each."""
    study = make_live_study(systems=SYSTEMS, items=4, votes_per_pair=3)
    Study.objects.filter(pk=study.pk).update(is_public=True, sampling="active")  # as leaderboard_create sets them
    study.refresh_from_db()
    now = timezone.now()
    leaderboard = PublicLeaderboard.objects.create(
        study=study, name="Open arena", slug="open-arena", starts_at=now - timedelta(days=40), period_days=30
    )
    PolicyVersion.objects.create(leaderboard=leaderboard, number=1, text="First rules.", effective_at=now)
    PolicyVersion.objects.create(leaderboard=leaderboard, number=2, text="Cap lowered.", effective_at=now)
    acme = Provider.objects.create(name="Acme", slug="acme")
    commons = Provider.objects.create(name="Commons", slug="commons")
    systems = {system.name: system for system in System.objects.filter(study=study)}
    submissions = {}
    for name, provider, license_class, prerelease in (
        ("acme-1", acme, LicenseClass.PROPRIETARY, False),
        ("acme-x", acme, LicenseClass.PROPRIETARY, True),
        ("<b>open</b>-7b", commons, LicenseClass.OPEN_WEIGHTS, False),
    ):
        submissions[name] = Submission.objects.create(
            leaderboard=leaderboard,
            provider=provider,
            system=systems[name],
            license_class=license_class,
            prerelease=prerelease,
            period_start=leaderboard.starts_at,
            registered_at=now - timedelta(days=39),
            window_ends_at=now - timedelta(days=25),
        )
    raters = [make_rater() for _ in range(6)]
    for rater in raters:
        evaluations_fixtures.cast_vote(rater, "a", study=study)
    return {"study": study, "leaderboard": leaderboard, "submissions": submissions, "now": now}


def _appearances(study: Study) -> dict[str, int]:
    counts = dict.fromkeys(SYSTEMS, 0)
    for task in Task.objects.filter(study=study).select_related("item_pair__pair_stat"):
        stat = task.item_pair.pair_stat
        for system_id in (stat.system_low_id, stat.system_high_id):
            counts[System.objects.get(pk=system_id).name] += 1
    return counts


def test_each_provider_gets_its_systems_battles_and_share(arena):
    report = transparency_report(leaderboard=arena["leaderboard"])
    appearances = _appearances(arena["study"])
    total = sum(appearances.values())
    assert total == 2 * Task.objects.filter(study=arena["study"]).count() == 12
    acme, commons = report.providers
    assert (acme.name, commons.name) == ("Acme", "Commons")
    assert [system.name for system in acme.systems] == ["acme-1", "acme-x"]
    assert acme.prerelease_tested == 1
    assert commons.prerelease_tested == 0
    assert acme.battles == appearances["acme-1"] + appearances["acme-x"]
    assert commons.battles == appearances["<b>open</b>-7b"]
    assert acme.battle_share == pytest.approx(acme.battles / 12)
    assert acme.battle_share + commons.battle_share == pytest.approx(1.0)
    assert acme.votes + commons.votes == 2 * Vote.objects.filter(study=arena["study"]).count() == 12
    assert [day.share for day in acme.days] == [
        pytest.approx(acme.battle_share, abs=1e-4)
    ]  # shares rounded to 4 places
    assert [system.status for system in acme.systems] == ["testing", "testing"]
    # Per system and day: battles and the probability the sampling policy recorded for its draws.
    tasks = Task.objects.filter(study=arena["study"]).select_related("item_pair__pair_stat")
    acme_1 = System.objects.get(study=arena["study"], name="acme-1")
    drawn = [
        task.sampling_probability
        for task in tasks
        if acme_1.pk in (task.item_pair.pair_stat.system_low_id, task.item_pair.pair_stat.system_high_id)
    ]
    (day,) = acme.systems[0].days
    assert day.battles == appearances["acme-1"] == len(drawn)
    assert day.mean_probability == round(sum(drawn) / len(drawn), 4) == acme.systems[0].mean_probability
    # Per provider and day: the same probabilities, averaged over its systems' appearances.
    by_system = {system.name: system.days[0] for system in acme.systems if system.days}
    expected = sum(d.mean_probability * d.battles for d in by_system.values()) / sum(
        d.battles for d in by_system.values()
    )
    assert acme.days[0].mean_probability == round(expected, 4)
    assert [version.number for version in report.policy] == [1, 2]
    assert report.sampling == "active"
    assert report.parameters["prerelease_cap"] == 5
    assert (report.battles, report.votes) == (6, 6)


def test_published_results_retirements_and_releases_appear(arena):
    now = arena["now"]
    acme_x = arena["submissions"]["acme-x"]
    Submission.objects.filter(pk=acme_x.pk).update(published_at=now, retired_at=now, retirement_rule="3,000 votes")
    PublishedResult.objects.create(submission=acme_x, published_at=now - timedelta(days=1), rating=990.0, votes=1)
    PublishedResult.objects.create(
        submission=acme_x, published_at=now, rating=1012.5, ci_low=950.0, ci_high=1070.0, rank=1, votes=4
    )
    PeriodRelease.objects.create(
        leaderboard=arena["leaderboard"],
        period_start=arena["leaderboard"].starts_at,
        period_end=arena["leaderboard"].starts_at + timedelta(days=30),
        battles=0,
        file_name="releases/open-arena/x.jsonl",
        size_bytes=0,
        file_sha256="a" * 64,
        chain_sha256="b" * 64,
        published_at=now,
    )
    report = transparency_report(leaderboard=arena["leaderboard"])
    acme = report.providers[0]
    entry = acme.systems[1]
    assert (entry.status, entry.results, entry.result.rating, entry.result.rank) == ("retired", 2, 1012.5, 1)
    assert [system.name for system in acme.retirements] == ["acme-x"]
    assert entry.retirement_rule == "3,000 votes"
    assert [release.chain_sha256 for release in report.releases] == ["b" * 64]
    # The votes were cast now, after the released period: none of them is in the released file.
    assert [provider.released_battles_given for provider in report.providers] == [0, 0]


def test_the_api_is_public_and_has_every_figure(arena, client):
    body = client.get("/api/v1/transparency/").json()
    (board,) = body["leaderboards"]
    assert board["slug"] == "open-arena"
    assert [provider["name"] for provider in board["providers"]] == ["Acme", "Commons"]
    assert set(board["providers"][0]) == {
        "name",
        "slug",
        "systems",
        "prerelease_tested",
        "battles",
        "votes",
        "battle_share",
        "days",
        "released_battles_with_its_systems",
        "released_battles_given",
    }
    assert board["providers"][0]["systems"][1]["prerelease"] is True
    assert [version["text"] for version in board["policy"]] == ["First rules.", "Cap lowered."]


def test_the_page_is_public_and_escapes_names(arena, client):
    page = client.get("/transparency/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Open arena" in html
    assert "&lt;b&gt;open&lt;/b&gt;-7b" in html
    assert "<b>open</b>" not in html
    assert "Cap lowered." in html


def test_the_page_has_an_empty_state(client, db):
    page = client.get("/transparency/")
    assert page.status_code == 200
    assert "No public leaderboard yet" in page.content.decode()


def test_released_battles_download_for_anyone_and_tampering_shows(arena, client, private_storage):
    leaderboard = arena["leaderboard"]
    release = period_release(leaderboard=leaderboard, period_start=leaderboard.starts_at, now=arena["now"])
    report = transparency_report(leaderboard=leaderboard)
    assert report.chain_verified
    assert [(entry.verified, entry.problem) for entry in report.releases] == [(True, "")]

    download = client.get(report.releases[0].download_url)
    assert download.status_code == 200
    assert download["Content-Disposition"] == 'attachment; filename="open-arena-{}.jsonl"'.format(
        f"{leaderboard.starts_at:%Y-%m-%d}"
    )
    assert b"".join(download.streaming_content) == private_storage.open(release.file_name).read()

    with private_storage.open(release.file_name, "wb") as tampered:
        tampered.write(b'{"model_a": "acme-1", "model_b": "acme-x", "winner": "model_a"}\n')
    report = transparency_report(leaderboard=leaderboard)
    assert not report.chain_verified
    assert report.releases[0].problem.startswith(f"file of {leaderboard.starts_at:%Y-%m-%d} changed")
    assert "chain broken" in client.get("/transparency/").content.decode()


def test_a_missing_release_is_404(client, db):
    assert client.get("/transparency/releases/999/battles.jsonl").status_code == 404
