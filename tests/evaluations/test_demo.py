"""The demo study: built through the real services, voted on by a simulated crowd, idempotent."""

from __future__ import annotations

from collections import Counter
from io import StringIO

import pytest
from django.core.management import call_command

from crowdplatform.accounts.demo import CLIENT_EMAIL, demo_accounts_ensure
from crowdplatform.accounts.models import Organization, User
from crowdplatform.core.models import AuditEvent
from crowdplatform.raters.models import ApplicationStatus, RaterProfile
from evaluations.assignment import task_next
from evaluations.demo import (
    ALWAYS_LEFT,
    CAREFUL,
    CROWD_EMAILS,
    DEMO_STUDY_NAME,
    SYSTEMS,
    TOO_FAST,
    crowd,
    demo_study_ensure,
)
from evaluations.models import Item, ItemPair, Response, Study, StudyStatus, System, Task, Vote
from tests.money import fund

pytestmark = pytest.mark.django_db

VOTES = 60


@pytest.fixture
def demo_client():
    """The demo accounts (client organization, staff reviewer, rater1): what seed_demo makes first."""
    demo_accounts_ensure({})
    owner = User.objects.get(email=CLIENT_EMAIL)
    organization = Organization.objects.get(memberships__user=owner)
    fund(organization.pk, 100_000)  # seed_demo funds it through Stripe Checkout (tests/core/test_seed_demo.py)
    return organization, owner


def votes_by_kind(study: Study) -> dict[str, list[Vote]]:
    kinds = {member.email: member.kind for member in crowd()}
    result: dict[str, list[Vote]] = {}
    for vote in Vote.objects.filter(study=study).select_related("rater__user", "system_a", "system_b"):
        result.setdefault(kinds[vote.rater.user.email], []).append(vote)
    return result


def snapshot() -> dict[str, object]:
    return {
        "users": User.objects.count(),
        "profiles": sorted(RaterProfile.objects.values_list("pk", "status")),
        "studies": sorted(Study.objects.values_list("pk", "status", "votes_count", "budget_cents")),
        "systems": sorted(System.objects.values_list("pk", "votes_count")),
        "items": Item.objects.count(),
        "responses": Response.objects.count(),
        "item_pairs": sorted(ItemPair.objects.values_list("pk", "votes")),
        "tasks": sorted((str(pk), status) for pk, status in Task.objects.values_list("pk", "status")),
        "votes": Vote.objects.count(),
        "audit": AuditEvent.objects.count(),
    }


def test_the_demo_study_is_live_and_voted_on_by_the_simulated_crowd(demo_client):
    organization, owner = demo_client
    study = demo_study_ensure(organization=organization, owner=owner, votes=VOTES)

    assert study.organization == organization
    assert study.name == DEMO_STUDY_NAME
    assert study.status == StudyStatus.LIVE
    assert study.created_by == owner
    assert study.criterion_names == ["correctness", "clarity", "safety"]
    assert (study.votes_per_pair, study.pay_per_task_cents, study.est_seconds_per_task) == (3, 25, 45)
    assert (study.sampling, study.gold_rate, study.requirements) == ("active", 0.1, {"languages": ["en"]})
    assert study.budget_cents >= ItemPair.objects.filter(study=study, is_gold=False).count() * 3 * 25
    assert sorted(study.systems.values_list("name", flat=True)) == sorted(system.name for system in SYSTEMS)
    assert all(study.systems.values_list("provider", flat=True))
    assert study.items.count() == 210
    assert study.items.filter(is_gold=True).count() == 10
    assert set(study.items.filter(is_gold=True).values_list("gold_answer", flat=True)) == {"good"}
    assert Response.objects.filter(item__study=study, content_html__contains="<pre><code").exists()

    assert study.votes_count == VOTES
    assert Vote.objects.filter(study=study).count() == VOTES
    assert not Task.objects.filter(study=study, status="leased").exists()

    crowd_profiles = RaterProfile.objects.filter(user__email__in=CROWD_EMAILS)
    assert crowd_profiles.count() == 40
    assert set(crowd_profiles.values_list("status", flat=True)) == {ApplicationStatus.APPROVED}
    assert not any(user.has_usable_password() for user in User.objects.filter(email__in=CROWD_EMAILS))
    assert set(Vote.objects.filter(study=study).values_list("rater__user__email", flat=True)) <= set(CROWD_EMAILS)


def test_the_crowd_behaves_as_designed_and_rater1_can_still_work(demo_client):
    organization, owner = demo_client
    study = demo_study_ensure(organization=organization, owner=owner, votes=VOTES)
    by_kind = votes_by_kind(study)

    # Careful raters recover the hidden ranking: the strongest system wins more often than the weakest.
    wins: Counter[str] = Counter()
    for vote in by_kind[CAREFUL]:
        if not vote.is_gold and vote.choice in ("a", "b"):
            wins[(vote.system_a if vote.choice == "a" else vote.system_b).name] += 1
    strongest = max(SYSTEMS, key=lambda system: system.strength).name
    weakest = min(SYSTEMS, key=lambda system: system.strength).name
    assert wins[strongest] > wins[weakest]

    assert by_kind[ALWAYS_LEFT]
    assert {vote.choice for vote in by_kind[ALWAYS_LEFT]} == {"a"}
    assert by_kind[TOO_FAST]
    assert all(vote.duration_ms < 10_000 for vote in by_kind[TOO_FAST])
    assert all(vote.duration_ms >= 40_000 for vote in by_kind[CAREFUL])

    rater1 = RaterProfile.objects.get(user__email="rater1@example.com")
    task = task_next(rater=rater1)
    assert task is not None
    assert task.study == study


def test_the_demo_study_is_made_once(demo_client):
    organization, owner = demo_client
    first = demo_study_ensure(organization=organization, owner=owner, votes=VOTES)
    before = snapshot()
    again = demo_study_ensure(organization=organization, owner=owner, votes=VOTES * 2)
    assert again.pk == first.pk
    assert snapshot() == before


def test_seed_demo_adds_the_demo_study_and_says_so(settings):
    settings.DEMO_STUDY_VOTES = 30
    out = StringIO()
    call_command("seed_demo", stdout=out)
    study = Study.objects.get(name=DEMO_STUDY_NAME)
    assert study.organization.name == "Demo Lab"
    assert study.votes_count == 30
    raters = Vote.objects.filter(study=study).values("rater").distinct().count()
    assert (
        f"Demo study: {DEMO_STUDY_NAME} — 6 systems, 210 items, 30 votes from {raters} simulated raters "
        "(log in as rater1 to vote)"
    ) in out.getvalue()
    before = snapshot()
    call_command("seed_demo", stdout=StringIO())
    assert snapshot() == before
