"""The database itself keeps what is published (migration integrity 0002), whatever the code does.

Raw SQL, past the ORM and the services: on PostgreSQL every UPDATE and DELETE of a policy version, a
published result or a period release is refused, as are deleting a submission and changing what
identifies it. SQLite (the local fallback) refuses the updates only: Django's test flush empties its
tables with DELETE.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import DatabaseError, connection, transaction

from crowdplatform.integrity.models import PeriodRelease, PolicyVersion, PublishedResult, Submission
from tests.integrity.conftest import NOW, START

pytestmark = pytest.mark.django_db

POSTGRES_ONLY = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="SQLite keeps the DELETE triggers off (test flush uses DELETE)"
)


@pytest.fixture
def submission(submit, providers) -> Submission:
    return submit(providers["open_weights"], "ow-large-2")


@pytest.fixture
def published_result(submission) -> PublishedResult:
    return PublishedResult.objects.create(
        submission=submission, published_at=NOW, rating=1012.5, ci_low=990.0, ci_high=1030.0, rank=2, votes=40
    )


@pytest.fixture
def period_release(leaderboard) -> PeriodRelease:
    return PeriodRelease.objects.create(
        leaderboard=leaderboard,
        period_start=START,
        period_end=START + timedelta(days=30),
        battles=40,
        file_name="integrity/open-arena/2026-01-01.jsonl",
        size_bytes=12_345,
        file_sha256="a" * 64,
        previous_chain_sha256="",
        chain_sha256="b" * 64,
        published_at=START + timedelta(days=30),
    )


def refused(sql: str, params: list[object]) -> None:
    """The statement fails in the database; its savepoint rolls back so the test can go on."""
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


def run(sql: str, params: list[object]) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


# --- Append-only tables: UPDATE (both databases) ------------------------------------------------


def test_a_policy_version_cannot_be_rewritten(leaderboard):
    version = PolicyVersion.objects.get()
    refused("UPDATE integrity_policyversion SET text = %s WHERE id = %s", ["Secretly changed.", version.pk])
    assert PolicyVersion.objects.get().text == version.text


def test_a_published_result_cannot_be_rewritten(published_result):
    refused("UPDATE integrity_publishedresult SET rating = %s WHERE id = %s", [1200.0, published_result.pk])
    refused("UPDATE integrity_publishedresult SET provisional = %s WHERE id = %s", [False, published_result.pk])
    stored = PublishedResult.objects.get()
    assert (stored.rating, stored.provisional) == (1012.5, True)


def test_a_period_release_cannot_be_rewritten(period_release):
    refused("UPDATE integrity_periodrelease SET file_sha256 = %s WHERE id = %s", ["c" * 64, period_release.pk])
    assert PeriodRelease.objects.get().file_sha256 == "a" * 64


# --- A submission's registration: UPDATE (both databases) ---------------------------------------


def test_a_submission_cannot_move_to_another_provider(submission, providers):
    refused(
        "UPDATE integrity_submission SET provider_id = %s WHERE id = %s", [providers["proprietary"].pk, submission.pk]
    )
    assert Submission.objects.get().provider == providers["open_weights"]


@pytest.mark.parametrize(
    ("column", "value"),
    [("prerelease", True), ("license_class", "open_source"), ("window_ends_at", NOW + timedelta(days=99))],
)
def test_a_submissions_registration_never_changes(submission, column, value):
    refused(f"UPDATE integrity_submission SET {column} = %s WHERE id = %s", [value, submission.pk])  # noqa: S608
    stored = Submission.objects.get()
    assert (stored.prerelease, stored.license_class, stored.window_ends_at) == (
        False,
        "open_weights",
        NOW + timedelta(days=14),
    )


def test_publication_and_retirement_are_set_once_and_stay(submission):
    published = NOW + timedelta(days=14)
    run("UPDATE integrity_submission SET published_at = %s WHERE id = %s", [published, submission.pk])
    run("UPDATE integrity_submission SET retired_at = %s WHERE id = %s", [published, submission.pk])

    refused("UPDATE integrity_submission SET published_at = NULL WHERE id = %s", [submission.pk])
    refused("UPDATE integrity_submission SET retired_at = %s WHERE id = %s", [published + timedelta(1), submission.pk])
    stored = Submission.objects.get()
    assert (stored.published_at, stored.retired_at) == (published, published)


# --- DELETE (PostgreSQL) ------------------------------------------------------------------------


@POSTGRES_ONLY
def test_append_only_rows_cannot_be_deleted(leaderboard, published_result, period_release):
    refused("DELETE FROM integrity_policyversion WHERE leaderboard_id = %s", [leaderboard.pk])
    refused("DELETE FROM integrity_publishedresult WHERE id = %s", [published_result.pk])
    refused("DELETE FROM integrity_periodrelease WHERE id = %s", [period_release.pk])
    assert (PolicyVersion.objects.count(), PublishedResult.objects.count(), PeriodRelease.objects.count()) == (1, 1, 1)


@POSTGRES_ONLY
def test_a_submission_is_never_deleted(submission):
    refused("DELETE FROM integrity_submission WHERE id = %s", [submission.pk])
    assert Submission.objects.get() == submission
