"""The demo public leaderboard that `seed_demo` adds (crowdplatform/integrity/demo.py), seeded once:
nine providers, three per license class; Helios Labs' four pre-release variants all published with
their scores; every submission published; the ended period released and its chain verifying; the
anonymous transparency page showing it all; and a second `seed_demo` adding nothing."""

from __future__ import annotations

import io
from collections import Counter
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from crowdplatform.accounts.demo import ADMIN_EMAIL
from crowdplatform.accounts.models import Organization, Role
from crowdplatform.core.models import AuditEvent
from crowdplatform.integrity.demo import ARENA_ORGANIZATION, ARENA_SLUG, PRERELEASE_PROVIDER, PROVIDERS, SYSTEMS
from crowdplatform.integrity.models import PeriodRelease, Provider, PublicLeaderboard, PublishedResult, Submission
from crowdplatform.integrity.report import transparency_report
from crowdplatform.integrity.selectors import release_chain_verify
from evaluations.models import Vote
from payments.models import Funding, FundingStatus

pytestmark = pytest.mark.django_db

VOTES = 160  # the arena's crowd casts as many votes as the demo study's (up to 800): enough for every system


def seed() -> str:
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def arena_counts() -> dict[str, int]:
    return {
        "providers": Provider.objects.count(),
        "leaderboards": PublicLeaderboard.objects.count(),
        "submissions": Submission.objects.count(),
        "results": PublishedResult.objects.count(),
        "releases": PeriodRelease.objects.count(),
        "votes": Vote.objects.count(),
        "fundings": Funding.objects.count(),
        "organizations": Organization.objects.count(),
        "audit_events": AuditEvent.objects.count(),
    }


def test_seed_demo_adds_a_public_arena_whose_every_score_is_published_and_whose_digests_verify(settings):
    settings.DEMO_STUDY_VOTES = VOTES
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # nothing listens: seed_demo starts its own sandbox
    output = seed()
    leaderboard = PublicLeaderboard.objects.select_related("study__organization").get(slug=ARENA_SLUG)

    # Staff's own organization, funded through the sandbox Checkout like the demo lab; the study is public.
    organization = leaderboard.study.organization
    assert organization.name == ARENA_ORGANIZATION
    assert list(organization.memberships.values_list("user__email", "role")) == [(ADMIN_EMAIL, Role.OWNER)]
    assert list(Funding.objects.filter(organization=organization).values_list("status", flat=True)) == [
        FundingStatus.PAID
    ]
    assert (leaderboard.study.is_public, leaderboard.study.sampling) == (True, "active")

    # Nine providers, three per license class (each provider's submissions share its class).
    submissions = Submission.objects.filter(leaderboard=leaderboard).select_related("provider", "system")
    classes = {submission.provider.name: submission.license_class for submission in submissions}
    assert sorted(classes) == sorted(PROVIDERS)
    assert Counter(classes.values()) == {"proprietary": 3, "open_weights": 3, "open_source": 3}
    assert [s.system.name for s in submissions] == [entry.system.name for entry in SYSTEMS]

    # Every submission's window has ended and its result is published.
    assert all(submission.published_at is not None for submission in submissions)
    assert set(PublishedResult.objects.values_list("submission_id", flat=True)) == {s.pk for s in submissions}

    # The pre-release provider's four variants (under the cap of 5) and its named system, all with scores.
    report = transparency_report(leaderboard=leaderboard)
    (helios,) = [provider for provider in report.providers if provider.name == PRERELEASE_PROVIDER]
    assert helios.prerelease_tested == 4
    assert [(s.name, s.prerelease) for s in helios.systems] == [
        ("kestrel", True),
        ("osprey", True),
        ("merlin", True),
        ("nightjar", True),
        ("helios-2", False),
    ]
    assert all(s.result is not None and s.result.rating is not None for s in helios.systems)

    # Exactly one period has ended: it is released, with every counted vote of the period, and the chain verifies.
    now = timezone.now()
    assert timedelta(days=20) <= now - leaderboard.starts_at < timedelta(days=21)
    release = PeriodRelease.objects.get(leaderboard=leaderboard)
    assert (release.period_start, release.period_end) == (
        leaderboard.starts_at,
        leaderboard.starts_at + timedelta(days=14),
    )
    assert release.previous_chain_sha256 == ""
    period_votes = Vote.objects.filter(
        study=leaderboard.study,
        is_gold=False,
        created_at__gte=release.period_start,
        created_at__lt=release.period_end,
    )
    assert 0 < release.battles <= period_votes.count()  # the file holds the period's counted votes
    assert release_chain_verify(leaderboard=leaderboard).ok
    assert report.chain_verified is True
    assert Vote.objects.filter(study=leaderboard.study).count() == VOTES

    line = next(line for line in output.splitlines() if line.startswith("Demo arena:"))
    assert line.startswith(
        "Demo arena: Open Arena (demo) — 9 providers (3 proprietary, 3 open weights, 3 open source), "
        f"16 systems (4 pre-release variants), {VOTES} votes, 16 of 16 submissions with published results, "
    )
    assert line.endswith(", 1 period released, digests verify (see /transparency/)")

    # Anyone may read the report: every provider, every system and the release's digests.
    page = Client().get("/transparency/")
    assert page.status_code == 200
    html = page.content.decode()
    for name in [*PROVIDERS, *(entry.system.name for entry in SYSTEMS)]:
        assert name in html, name
    assert release.file_sha256 in html
    assert release.chain_sha256 in html
    assert "chain verifies" in html

    # A second run creates nothing and says the same.
    before = arena_counts()
    again = seed()
    assert arena_counts() == before
    assert line in again.splitlines()
