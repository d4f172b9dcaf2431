"""Publishing results when testing windows end (crowdplatform.integrity.publishing.results_publish_due)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from crowdplatform.core.models import AuditEvent
from crowdplatform.integrity import publishing
from crowdplatform.integrity.models import LicenseClass, PublishedResult, Submission
from crowdplatform.integrity.tasks import integrity_publish
from evaluations.leaderboard import study_leaderboard
from tests.integrity.fixtures_publishing import *  # noqa: F403 (the fixtures)
from tests.integrity.fixtures_publishing import T0, snapshot, votes_cast

pytestmark = pytest.mark.django_db

# alpha and beta meet on one item, then all three on two more; "quiet" comes after the last upload,
# so it is in no item and never gets a vote. One vote per item pair: alpha 5, beta 5, gamma 4 votes.
STAGES = ((("alpha", "beta"), 1), (("gamma",), 2), (("quiet",), 0))
SMALL_BOOTSTRAP = 20


@pytest.fixture
def small_bootstrap(monkeypatch) -> int:
    monkeypatch.setattr(publishing, "PUBLISH_BOOTSTRAP", SMALL_BOOTSTRAP)
    return SMALL_BOOTSTRAP


@pytest.fixture
def arena(make_public_study, make_leaderboard, make_provider, submit):
    """Four submissions registered at T0 (windows end at T0 + 14 days), before any vote."""
    study = make_public_study(stages=STAGES)
    leaderboard = make_leaderboard(study, provisional_votes=5)
    acme, open_co = make_provider("Acme"), make_provider("OpenCo")
    submissions = {
        "alpha": submit(leaderboard, acme, "alpha"),
        "beta": submit(leaderboard, open_co, "beta", license_class=LicenseClass.OPEN_WEIGHTS),
        "gamma": submit(leaderboard, acme, "gamma", registered_at=T0 + timedelta(hours=1)),
        "quiet": submit(leaderboard, open_co, "quiet", license_class=LicenseClass.OPEN_SOURCE),
    }
    return leaderboard, submissions


def expected_rows(leaderboard, *, bootstrap: int) -> dict[str, tuple]:
    board = study_leaderboard(study=leaderboard.study, bootstrap=bootstrap, seed=0)
    return {
        row.system: (
            row.rating,
            row.ci_low,
            row.ci_high,
            row.rank,
            row.votes,
            row.votes < leaderboard.provisional_votes,
        )
        for row in board.rows
    }


def published(submission: Submission) -> list[tuple]:
    return list(
        PublishedResult.objects.filter(submission=submission)
        .order_by("published_at", "id")
        .values_list("rating", "ci_low", "ci_high", "rank", "votes", "provisional")
    )


def test_results_are_published_when_windows_end_with_the_leaderboards_numbers(arena, make_rater):
    """Default options (1000 bootstrap rounds, seed 0, quality=included): exactly the leaderboard's row."""
    leaderboard, submissions = arena
    assert len(votes_cast(make_rater(), leaderboard.study, start=T0 + timedelta(days=1))) == 7
    now = T0 + timedelta(days=15)

    assert publishing.results_publish_due(now=now) == 4

    expected = expected_rows(leaderboard, bootstrap=1000)
    assert expected["alpha"][4:] == (5, False)  # alpha: 5 votes, not provisional at 5
    assert expected["gamma"][4:] == (4, True)
    for name, submission in submissions.items():
        submission.refresh_from_db()
        assert submission.published_at == now
        if name != "quiet":
            assert published(submission) == [expected[name]]
    assert published(submissions["quiet"]) == [(None, None, None, None, 0, True)]
    assert PublishedResult.objects.filter(published_at=now).count() == 4
    audit = AuditEvent.objects.filter(action="integrity.result_publish").order_by("id")
    assert [(event.target_id, event.data["votes"]) for event in audit] == [
        (str(submissions[name].pk), votes) for name, votes in (("alpha", 5), ("beta", 5), ("quiet", 0), ("gamma", 4))
    ]


def test_a_submission_is_published_only_once_its_window_has_ended(arena, make_rater, small_bootstrap):
    leaderboard, submissions = arena
    votes_cast(make_rater(), leaderboard.study, start=T0 + timedelta(days=1))
    almost = T0 + timedelta(days=14, hours=1) - timedelta(microseconds=1)

    assert publishing.results_publish_due(now=almost) == 3  # gamma's window ends an hour later

    submissions["gamma"].refresh_from_db()
    assert submissions["gamma"].published_at is None
    assert published(submissions["gamma"]) == []
    assert publishing.results_publish_due(now=almost + timedelta(microseconds=1)) == 1
    assert published(submissions["gamma"]) == [expected_rows(leaderboard, bootstrap=small_bootstrap)["gamma"]]


def test_a_second_run_writes_nothing(arena, make_rater, small_bootstrap):
    leaderboard, _ = arena
    votes_cast(make_rater(), leaderboard.study, start=T0 + timedelta(days=1))
    assert publishing.results_publish_due(now=T0 + timedelta(days=15)) == 4
    before = snapshot()

    assert publishing.results_publish_due(now=T0 + timedelta(days=16)) == 0

    assert snapshot() == before


def test_published_scores_follow_new_votes_and_history_stays(arena, make_rater, small_bootstrap):
    leaderboard, submissions = arena
    rater = make_rater()
    votes_cast(rater, leaderboard.study, start=T0 + timedelta(days=1), count=4)
    first_at = T0 + timedelta(days=15)
    assert publishing.results_publish_due(now=first_at) == 4
    first = expected_rows(leaderboard, bootstrap=small_bootstrap)

    votes_cast(rater, leaderboard.study, start=T0 + timedelta(days=16))  # the remaining 3 votes
    second_at = T0 + timedelta(days=17)
    written = publishing.results_publish_due(now=second_at)

    second = expected_rows(leaderboard, bootstrap=small_bootstrap)
    changed = [name for name in ("alpha", "beta", "gamma") if first[name][4] != second[name][4]]
    assert written == len(changed) > 0
    for name in ("alpha", "beta", "gamma"):
        rows = [first[name], second[name]] if name in changed else [first[name]]
        assert published(submissions[name]) == rows
    assert published(submissions["quiet"]) == [(None, None, None, None, 0, True)]
    assert PublishedResult.objects.filter(published_at=second_at).count() == len(changed)
    assert AuditEvent.objects.filter(action="integrity.result_update").count() == len(changed)
    for submission in submissions.values():
        submission.refresh_from_db()
        assert submission.published_at == first_at  # the first publication's date stays


def test_the_periodic_task_publishes_retires_and_releases_once(
    make_public_study, make_leaderboard, make_provider, submit, make_rater, release_storage, small_bootstrap
):
    """The task reads the real clock: the data is placed relative to it."""
    start = timezone.now() - timedelta(days=10)
    study = make_public_study(stages=((("one", "two"), 1),))
    leaderboard = make_leaderboard(study, starts_at=start, period_days=7, window_days=1, retire_after_votes=10**6)
    lab = make_provider("Lab")
    submit(leaderboard, lab, "one", registered_at=start)
    submit(leaderboard, lab, "two", registered_at=start)
    votes_cast(make_rater(), study, start=start + timedelta(hours=1))

    assert integrity_publish() == {"results": 2, "retired": 0, "releases": 1, "releases_broken": 0}
    before = snapshot()
    assert integrity_publish() == {"results": 0, "retired": 0, "releases": 0, "releases_broken": 0}
    assert snapshot() == before
