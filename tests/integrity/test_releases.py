"""Period releases and their SHA-256 chain (crowdplatform.integrity.publishing.period_release,
releases_due; crowdplatform.integrity.selectors.release_chain_verify, chain_digest)."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest

from crowdplatform.core.errors import ApplicationError, ConflictError
from crowdplatform.core.models import AuditEvent
from crowdplatform.integrity import publishing
from crowdplatform.integrity.models import PeriodRelease
from crowdplatform.integrity.selectors import chain_digest, release_chain_verify
from tests.integrity.fixtures_publishing import *  # noqa: F403 (the fixtures)
from tests.integrity.fixtures_publishing import T0, snapshot, storage_files, storage_rewrite, votes_cast

pytestmark = pytest.mark.django_db

WEEK = timedelta(days=7)
NOW = T0 + timedelta(days=20)  # periods 0 and 1 have ended; period 2 ends on day 21


@pytest.fixture
def arena(make_public_study, make_leaderboard, make_rater, release_storage):
    """Two votes in each of the first three weekly periods, a day into each."""
    study = make_public_study(stages=((("one", "two"), 6),))
    leaderboard = make_leaderboard(study, period_days=7)
    rater = make_rater()
    votes = {
        period: votes_cast(rater, study, start=T0 + period * WEEK + timedelta(days=1), count=2) for period in range(3)
    }
    return leaderboard, votes


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stored_bytes(storage, name: str) -> bytes:
    with storage.open(name, "rb") as handle:
        return handle.read()


def api_jsonl(api_client, owner, study, since, until) -> bytes:
    api_client.force_authenticate(owner)
    response = api_client.get(
        f"/api/v1/studies/{study.pk}/votes.jsonl", {"since": since.isoformat(), "until": until.isoformat()}
    )
    assert response.status_code == 200
    return b"".join(response.streaming_content)


def test_a_period_release_is_the_export_apis_jsonl_with_its_chain(arena, release_storage, api_client, owner):
    leaderboard, votes = arena

    release = publishing.period_release(leaderboard=leaderboard, period_start=T0, now=NOW)

    data = stored_bytes(release_storage, "releases/open-arena/2026-01-01.jsonl")
    assert data == api_jsonl(api_client, owner, leaderboard.study, T0, T0 + WEEK)
    assert [json.loads(line)["vote_id"] for line in data.splitlines()] == [vote.pk for vote in votes[0]]
    file_sha256 = sha256(data)
    recipe = f"\n{file_sha256}\nopen-arena\n2026-01-01T00:00:00+00:00\n2026-01-08T00:00:00+00:00\n2\n"
    assert (
        release.period_start,
        release.period_end,
        release.battles,
        release.file_name,
        release.size_bytes,
        release.file_sha256,
        release.previous_chain_sha256,
        release.chain_sha256,
        release.published_at,
    ) == (
        T0,
        T0 + WEEK,
        2,
        "releases/open-arena/2026-01-01.jsonl",
        len(data),
        file_sha256,
        "",
        sha256(recipe.encode()),
        NOW,
    )
    event = AuditEvent.objects.get(action="integrity.release")
    assert (event.target_id, event.data["chain_sha256"], event.data["battles"]) == (
        str(release.pk),
        release.chain_sha256,
        2,
    )


def test_releases_due_releases_every_ended_period_in_order_and_the_chain_verifies(arena, release_storage):
    leaderboard, _ = arena

    assert publishing.releases_due(now=NOW) == 2

    first, second = PeriodRelease.objects.filter(leaderboard=leaderboard).order_by("period_start")
    assert (first.period_start, second.period_start, second.period_end) == (T0, T0 + WEEK, T0 + 2 * WEEK)
    assert second.previous_chain_sha256 == first.chain_sha256
    assert second.chain_sha256 == chain_digest(
        previous_chain_sha256=first.chain_sha256,
        file_sha256=sha256(stored_bytes(release_storage, "releases/open-arena/2026-01-08.jsonl")),
        leaderboard_slug="open-arena",
        period_start=T0 + WEEK,
        period_end=T0 + 2 * WEEK,
        battles=2,
    )
    check = release_chain_verify(leaderboard=leaderboard)
    assert check.ok
    assert check.first_mismatch is None
    assert [(release.period_start, release.ok, release.reason) for release in check.releases] == [
        (T0, True, ""),
        (T0 + WEEK, True, ""),
    ]
    before = snapshot()
    assert publishing.releases_due(now=NOW) == 0
    assert snapshot() == before


def test_a_second_call_returns_the_existing_release(arena):
    leaderboard, _ = arena
    release = publishing.period_release(leaderboard=leaderboard, period_start=T0, now=NOW)
    before = snapshot()

    again = publishing.period_release(leaderboard=leaderboard, period_start=T0, now=NOW + WEEK)

    assert (again.pk, again.chain_sha256, again.published_at) == (release.pk, release.chain_sha256, NOW)
    assert snapshot() == before


def test_a_period_whose_previous_period_has_no_release_is_refused(arena, release_storage):
    leaderboard, _ = arena
    before = snapshot()

    with pytest.raises(ConflictError) as refused:
        publishing.period_release(leaderboard=leaderboard, period_start=T0 + WEEK, now=NOW)

    assert refused.value.code == "previous_period_unreleased"
    assert snapshot() == before
    assert storage_files(release_storage) == []


def test_a_period_that_has_not_ended_is_refused(arena, release_storage):
    leaderboard, _ = arena
    assert publishing.releases_due(now=NOW) == 2
    before = snapshot()
    files = storage_files(release_storage)

    with pytest.raises(ConflictError) as refused:
        publishing.period_release(
            leaderboard=leaderboard, period_start=T0 + 2 * WEEK, now=T0 + 3 * WEEK - timedelta(seconds=1)
        )

    assert refused.value.code == "period_not_ended"
    assert snapshot() == before
    assert (
        storage_files(release_storage)
        == files
        == [
            "releases/open-arena/2026-01-01.jsonl",
            "releases/open-arena/2026-01-08.jsonl",
        ]
    )
    # At its very end it is released.
    release = publishing.period_release(leaderboard=leaderboard, period_start=T0 + 2 * WEEK, now=T0 + 3 * WEEK)
    assert release.battles == 2


def test_a_start_that_begins_no_period_is_refused(arena, release_storage):
    leaderboard, _ = arena
    before = snapshot()

    with pytest.raises(ApplicationError) as refused:
        publishing.period_release(leaderboard=leaderboard, period_start=T0 + timedelta(days=1), now=NOW)

    assert refused.value.code == "invalid_period"
    assert snapshot() == before
    assert storage_files(release_storage) == []


def test_a_rewritten_file_is_detected(arena, release_storage):
    leaderboard, _ = arena
    publishing.releases_due(now=NOW)
    name = "releases/open-arena/2026-01-01.jsonl"
    stored = PeriodRelease.objects.get(file_name=name).file_sha256
    original = stored_bytes(release_storage, name)
    forged = original.replace(b'"winner": "model_a"', b'"winner": "model_b"', 1)
    assert forged != original

    storage_rewrite(release_storage, name, forged)

    check = release_chain_verify(leaderboard=leaderboard)
    assert not check.ok
    assert (
        check.first_mismatch.reason == f"file of 2026-01-01 changed: stored sha256 {stored}, file now {sha256(forged)}"
    )
    assert [release.ok for release in check.releases] == [False, True]


def test_a_missing_file_is_detected(arena, release_storage):
    leaderboard, _ = arena
    publishing.releases_due(now=NOW)

    release_storage.delete("releases/open-arena/2026-01-08.jsonl")

    check = release_chain_verify(leaderboard=leaderboard)
    assert [(release.ok, release.reason) for release in check.releases] == [
        (True, ""),
        (False, "file of 2026-01-08 is missing: releases/open-arena/2026-01-08.jsonl"),
    ]


def test_an_empty_period_is_released_too(make_public_study, make_leaderboard, release_storage):
    leaderboard = make_leaderboard(make_public_study(stages=((("one", "two"), 1),)), period_days=7)

    release = publishing.period_release(leaderboard=leaderboard, period_start=T0, now=NOW)

    assert (release.battles, release.size_bytes, release.file_sha256) == (0, 0, sha256(b""))
    assert release_chain_verify(leaderboard=leaderboard).ok


def test_chain_digest_is_the_documented_recipe():
    start, end = T0, T0 + WEEK
    text = "ab\ncd\nslug\n2026-01-01T00:00:00+00:00\n2026-01-08T00:00:00+00:00\n42\n"

    digest = chain_digest(
        previous_chain_sha256="ab",
        file_sha256="cd",
        leaderboard_slug="slug",
        period_start=start,
        period_end=end,
        battles=42,
    )

    assert digest == hashlib.sha256(text.encode()).hexdigest()


def test_a_release_written_by_a_concurrent_run_stands(arena, release_storage, monkeypatch):
    """The race the unique period constraint settles: another run inserts the period's release after
    this one's check; this one's insert fails, it returns theirs and writes no file of its own."""
    leaderboard, _ = arena
    theirs: list[PeriodRelease] = []
    real_chain_digest = publishing.chain_digest

    def chain_digest_after_a_concurrent_insert(**parts):
        theirs.append(
            PeriodRelease.objects.create(
                leaderboard=leaderboard,
                period_start=T0,
                period_end=T0 + WEEK,
                battles=2,
                file_name="releases/open-arena/2026-01-01.jsonl",
                size_bytes=1,
                file_sha256="e" * 64,
                chain_sha256="f" * 64,
                published_at=NOW,
            )
        )
        return real_chain_digest(**parts)

    monkeypatch.setattr(publishing, "chain_digest", chain_digest_after_a_concurrent_insert)
    audit = AuditEvent.objects.count()

    release = publishing.period_release(leaderboard=leaderboard, period_start=T0, now=NOW)

    assert (release.pk, release.chain_sha256) == (theirs[0].pk, "f" * 64)
    assert PeriodRelease.objects.count() == 1
    assert AuditEvent.objects.count() == audit
    assert storage_files(release_storage) == []
