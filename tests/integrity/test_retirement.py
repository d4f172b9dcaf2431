"""Equal retirement (crowdplatform.integrity.publishing.retirements_apply): one published rule, the same
figures for every license class and provider; nothing is deleted or hidden."""

from __future__ import annotations

from datetime import timedelta

import pytest

from crowdplatform.core.models import AuditEvent
from crowdplatform.integrity import publishing
from crowdplatform.integrity.models import LicenseClass, PublicLeaderboard, PublishedResult
from evaluations.models import System
from tests.integrity.fixtures_publishing import *  # noqa: F403 (the fixtures)
from tests.integrity.fixtures_publishing import T0, snapshot, votes_cast

pytestmark = pytest.mark.django_db

# Six systems on one item, one vote per item pair: 15 votes, every system in exactly 5 of them.
ACME = ("acme-1", "acme-2", "acme-3")
OPEN = ("open-1", "open-2", "open-3")
PUBLISHED_AT = T0 + timedelta(days=20)
RETIRED_AT = T0 + timedelta(days=21)


@pytest.fixture(autouse=True)
def small_bootstrap(monkeypatch) -> None:
    monkeypatch.setattr(publishing, "PUBLISH_BOOTSTRAP", 10)


@pytest.fixture
def arena(make_public_study, make_leaderboard, make_provider, submit, make_rater):
    """Acme (proprietary) and OpenCo (open weights) each registered three systems, an hour apart;
    every system has 5 votes and a published result."""
    study = make_public_study(stages=((ACME + OPEN, 1),))
    leaderboard = make_leaderboard(study, retire_after_votes=5, retire_newer_required=2)
    acme, open_co = make_provider("Acme"), make_provider("OpenCo")
    submissions = {}
    for position, (mine, theirs) in enumerate(zip(ACME, OPEN, strict=True)):
        at = T0 + timedelta(hours=position)
        submissions[mine] = submit(leaderboard, acme, mine, registered_at=at)
        submissions[theirs] = submit(
            leaderboard, open_co, theirs, license_class=LicenseClass.OPEN_WEIGHTS, registered_at=at
        )
    assert len(votes_cast(make_rater(), study, start=T0 + timedelta(days=1))) == 15
    assert publishing.results_publish_due(now=PUBLISHED_AT) == 6
    assert set(PublishedResult.objects.values_list("votes", flat=True)) == {5}
    return leaderboard, submissions


def retirements(leaderboard: PublicLeaderboard) -> dict[str, tuple]:
    return {
        submission.system.name: (submission.license_class, submission.retired_at, submission.retirement_rule)
        for submission in leaderboard.submissions.select_related("system").filter(retired_at__isnull=False)
    }


def test_the_same_rule_retires_a_proprietary_and_an_open_weights_system_alike(arena):
    leaderboard, submissions = arena

    assert publishing.retirements_apply(now=RETIRED_AT) == 2

    assert retirements(leaderboard) == {
        "acme-1": (
            LicenseClass.PROPRIETARY,
            RETIRED_AT,
            "5 votes ≥ 5, and 2 newer published systems of Acme: acme-2, acme-3 (policy v1)",
        ),
        "open-1": (
            LicenseClass.OPEN_WEIGHTS,
            RETIRED_AT,
            "5 votes ≥ 5, and 2 newer published systems of OpenCo: open-2, open-3 (policy v1)",
        ),
    }
    assert dict(System.objects.filter(retired_at__isnull=False).values_list("name", "retired_at")) == {
        "acme-1": RETIRED_AT,
        "open-1": RETIRED_AT,
    }
    audit = AuditEvent.objects.filter(action="integrity.retire").order_by("id")
    assert [(event.target_id, event.data["votes"], event.data["newer"]) for event in audit] == [
        (str(submissions["acme-1"].pk), 5, ["acme-2", "acme-3"]),
        (str(submissions["open-1"].pk), 5, ["open-2", "open-3"]),
    ]


def test_one_vote_short_retires_nobody(arena):
    leaderboard, _ = arena
    PublicLeaderboard.objects.filter(pk=leaderboard.pk).update(retire_after_votes=6)
    before = snapshot()

    assert publishing.retirements_apply(now=RETIRED_AT) == 0

    assert snapshot() == before


def test_one_newer_system_short_retires_nobody(arena):
    leaderboard, _ = arena
    PublicLeaderboard.objects.filter(pk=leaderboard.pk).update(retire_newer_required=3)
    before = snapshot()

    assert publishing.retirements_apply(now=RETIRED_AT) == 0

    assert snapshot() == before


def test_newer_systems_count_only_once_published(
    make_public_study, make_leaderboard, make_provider, submit, make_rater
):
    study = make_public_study(stages=((ACME, 1),))
    leaderboard = make_leaderboard(study, retire_after_votes=2, retire_newer_required=2)
    acme = make_provider("Acme")
    submit(leaderboard, acme, "acme-1", registered_at=T0)
    submit(leaderboard, acme, "acme-2", registered_at=T0 + timedelta(hours=1))
    submit(leaderboard, acme, "acme-3", registered_at=T0 + timedelta(days=10))  # window ends on day 24
    votes_cast(make_rater(), study, start=T0 + timedelta(days=11))
    assert publishing.results_publish_due(now=PUBLISHED_AT) == 2
    before = snapshot()

    assert publishing.retirements_apply(now=RETIRED_AT) == 0
    assert snapshot() == before

    later = T0 + timedelta(days=25)
    assert publishing.results_publish_due(now=later) == 1
    assert publishing.retirements_apply(now=later) == 1
    assert retirements(leaderboard) == {
        "acme-1": (
            LicenseClass.PROPRIETARY,
            later,
            "2 votes ≥ 2, and 2 newer published systems of Acme: acme-2, acme-3 (policy v1)",
        )
    }


def test_retirement_hides_nothing_and_a_second_run_changes_nothing(arena):
    leaderboard, _ = arena
    results_before = sorted(PublishedResult.objects.values_list("pk", "submission_id", "rating", "votes"))
    assert publishing.retirements_apply(now=RETIRED_AT) == 2
    before = snapshot()

    assert publishing.retirements_apply(now=RETIRED_AT + timedelta(days=1)) == 0
    assert publishing.results_publish_due(now=RETIRED_AT + timedelta(days=1)) == 0

    assert snapshot() == before
    # Every submission and its results are still there; the retired ones keep their last result.
    assert leaderboard.submissions.count() == 6
    assert sorted(PublishedResult.objects.values_list("pk", "submission_id", "rating", "votes")) == results_before
    assert System.objects.filter(study=leaderboard.study).count() == 6
