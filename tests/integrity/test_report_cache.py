"""The transparency report is public, and aggregating a study's whole history costs seconds at a million
votes: it is cached per leaderboard for TRANSPARENCY_REPORT_CACHE_SECONDS, published records show at once,
and released files are re-read only when touched (or by the periodic run, which reads them all)."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.cache import cache
from django.utils import timezone

from crowdplatform.integrity import selectors
from crowdplatform.integrity.models import PeriodRelease, PolicyVersion, PublishedResult, Submission
from crowdplatform.integrity.publishing import period_release, releases_rehash
from crowdplatform.integrity.report import _spans, transparency_report_cached
from tests.evaluations import conftest as evaluations_fixtures
from tests.integrity.test_transparency import arena as arena  # a fixture
from tests.integrity.test_transparency import private_storage as private_storage  # a fixture

pytestmark = pytest.mark.django_db


def test_a_repeated_view_costs_one_query(arena, django_assert_num_queries):
    first = transparency_report_cached(leaderboard=arena["leaderboard"])
    with django_assert_num_queries(1):  # what is published now, to find the entry
        again = transparency_report_cached(leaderboard=arena["leaderboard"])
    assert again == first
    assert first.computed_at is not None


def test_running_counts_lag_until_the_entry_expires(arena, make_rater):
    before = transparency_report_cached(leaderboard=arena["leaderboard"])
    evaluations_fixtures.cast_vote(make_rater(), "b", study=arena["study"])
    assert transparency_report_cached(leaderboard=arena["leaderboard"]).battles == before.battles == 6
    cache.clear()  # the entry's TRANSPARENCY_REPORT_CACHE_SECONDS have passed
    assert transparency_report_cached(leaderboard=arena["leaderboard"]).battles == 7


@pytest.mark.parametrize("publish", ["result", "retirement", "policy version", "parameters"])
def test_anything_published_shows_at_once(arena, publish):
    leaderboard, now = arena["leaderboard"], arena["now"]
    acme_x = arena["submissions"]["acme-x"]
    assert transparency_report_cached(leaderboard=leaderboard).providers[0].systems[1].result is None
    if publish == "result":
        PublishedResult.objects.create(submission=acme_x, published_at=now, rating=1012.5, votes=4)
    elif publish == "retirement":
        Submission.objects.filter(pk=acme_x.pk).update(published_at=now, retired_at=now, retirement_rule="rule")
    elif publish == "policy version":
        PolicyVersion.objects.create(leaderboard=leaderboard, number=3, text="Third.", effective_at=now)
    else:
        type(leaderboard).objects.filter(pk=leaderboard.pk).update(prerelease_cap=1)
        leaderboard.refresh_from_db()
    report = transparency_report_cached(leaderboard=leaderboard)
    shown = {
        "result": lambda: report.providers[0].systems[1].result.rating,
        "retirement": lambda: report.providers[0].systems[1].status,
        "policy version": lambda: [version.number for version in report.policy],
        "parameters": lambda: report.parameters["prerelease_cap"],
    }[publish]()
    assert shown == {"result": 1012.5, "retirement": "retired", "policy version": [1, 2, 3], "parameters": 1}[publish]


def test_while_one_request_recomputes_the_others_serve_the_copy_at_hand(arena, make_rater):
    leaderboard = arena["leaderboard"]
    before = transparency_report_cached(leaderboard=leaderboard)
    acme_x = arena["submissions"]["acme-x"]
    PublishedResult.objects.create(submission=acme_x, published_at=arena["now"], rating=1012.5, votes=4)
    assert cache.add(f"integrity:report:{leaderboard.pk}:computing", 1, 60)  # another request is at it
    assert transparency_report_cached(leaderboard=leaderboard) == before  # a few seconds late, not recomputed
    cache.delete(f"integrity:report:{leaderboard.pk}:computing")  # it is done
    assert transparency_report_cached(leaderboard=leaderboard).providers[0].systems[1].result.rating == 1012.5


def test_with_nothing_at_hand_the_report_is_computed_whatever_the_lock(arena):
    leaderboard = arena["leaderboard"]
    assert cache.add(f"integrity:report:{leaderboard.pk}:computing", 1, 60)
    assert transparency_report_cached(leaderboard=leaderboard).battles == 6


def test_an_outdated_copy_is_recomputed(arena, make_rater, settings):
    leaderboard = arena["leaderboard"]
    settings.TRANSPARENCY_REPORT_CACHE_SECONDS = 0  # every copy is outdated at once
    assert transparency_report_cached(leaderboard=leaderboard).battles == 6
    evaluations_fixtures.cast_vote(make_rater(), "b", study=arena["study"])
    assert transparency_report_cached(leaderboard=leaderboard).battles == 7
    assert cache.get(f"integrity:report:{leaderboard.pk}:computing") is None  # the lock is let go


def test_a_release_shows_at_once(arena, private_storage):
    leaderboard = arena["leaderboard"]
    assert transparency_report_cached(leaderboard=leaderboard).releases == []
    release = period_release(leaderboard=leaderboard, period_start=leaderboard.starts_at, now=arena["now"])
    [entry] = transparency_report_cached(leaderboard=leaderboard).releases
    assert (entry.chain_sha256, entry.verified) == (release.chain_sha256, True)


# --- Released files: read again only when touched ---------------------------------------------


@pytest.fixture
def released(arena, private_storage) -> list[PeriodRelease]:
    """Two periods released: the first ended before the votes (an empty file), the second holds them."""
    leaderboard = arena["leaderboard"]
    first = period_release(leaderboard=leaderboard, period_start=leaderboard.starts_at, now=arena["now"])
    second = period_release(
        leaderboard=leaderboard, period_start=first.period_end, now=first.period_end + timedelta(days=30)
    )
    assert (first.battles, second.battles) == (0, 6)
    return [first, second]


@pytest.fixture
def reads(monkeypatch) -> list[str]:
    """The files actually read and hashed."""
    read: list[str] = []
    original = selectors.stored_file_sha256

    def counting(file_name: str) -> str | None:
        read.append(file_name)
        return original(file_name)

    monkeypatch.setattr(selectors, "stored_file_sha256", counting)
    return read


def test_an_untouched_file_is_hashed_once(arena, released, reads):
    for _ in range(3):
        assert selectors.release_chain_verify(leaderboard=arena["leaderboard"]).ok
    assert reads == [released[0].file_name, released[1].file_name]


def test_a_rewritten_file_is_read_again_at_once(arena, released, reads, private_storage):
    first, second = released
    assert selectors.release_chain_verify(leaderboard=arena["leaderboard"]).ok
    with private_storage.open(second.file_name, "wb") as tampered:
        tampered.write(b"{}\n")
    check = selectors.release_chain_verify(leaderboard=arena["leaderboard"])
    assert not check.ok
    assert check.first_mismatch.reason.startswith(f"file of {second.period_start:%Y-%m-%d} changed")
    assert reads == [first.file_name, second.file_name, second.file_name]


def test_a_rewrite_forging_size_and_time_is_caught_by_the_periodic_rehash(arena, released, private_storage):
    path = Path(private_storage.path(released[1].file_name))
    original = path.read_bytes()
    stat = path.stat()
    assert selectors.release_chain_verify(leaderboard=arena["leaderboard"]).ok  # remembered
    forged = original.replace(b'"model_a"', b'"model_A"', 1)
    assert len(forged) == len(original)
    assert forged != original
    path.write_bytes(forged)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert selectors.release_chain_verify(leaderboard=arena["leaderboard"]).ok  # the forgery fools the cache
    assert releases_rehash() == 1  # the periodic run reads every file
    assert not selectors.release_chain_verify(leaderboard=arena["leaderboard"]).ok  # and now every view knows


def test_back_to_back_periods_make_one_span(arena):
    start = arena["leaderboard"].starts_at
    week = timedelta(days=7)

    def release(offset: int) -> PeriodRelease:
        return PeriodRelease(period_start=start + offset * week, period_end=start + (offset + 1) * week)

    assert _spans([release(2), release(0), release(1), release(4)]) == [
        (start, start + 3 * week),
        (start + 4 * week, start + 5 * week),
    ]
    assert _spans([]) == []


def test_the_page_says_when_its_figures_were_computed(arena, client):
    page = client.get("/transparency/").content.decode()
    computed = transparency_report_cached(leaderboard=arena["leaderboard"]).computed_at
    assert computed <= timezone.now()
    assert f"Figures as of {computed:%Y-%m-%d %H:%M} UTC" in page
