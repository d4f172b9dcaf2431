"""Builders for the integrity domain, through the real services.

- `public_study`: a live study (systems "base-a" and "base-b", 3 items, uniform sampling until a
  leaderboard takes it over), owned by the `organization` fixture ("Alpha Lab");
- `providers`: one provider per license class, keyed by LicenseClass value; the proprietary one is
  a client organization ("Gamma AI", with `provider_owner` and `provider_member`);
- `leaderboard`: a public leaderboard over `public_study` starting at START, with PARAMETERS;
- `submit`: registers a submission (staff by default) at NOW unless told otherwise;
- `integrity_snapshot()`: what a refused call must leave as it was.

The evaluations builders (make_study, make_live_study, add_systems, upload, make_rater) are
imported from tests/evaluations/conftest.py so the two folders build studies the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crowdplatform.accounts.models import Role
from crowdplatform.core.models import AuditEvent
from crowdplatform.integrity import services
from crowdplatform.integrity.models import (
    LicenseClass,
    PeriodRelease,
    PolicyVersion,
    Provider,
    PublicLeaderboard,
    PublishedResult,
    Submission,
)
from evaluations.models import Response, Study, System
from tests.evaluations import conftest as evaluations_fixtures
from tests.factories import MembershipFactory, OrganizationFactory

# The evaluations builders, as fixtures of this folder too.
make_study = evaluations_fixtures.make_study
add_systems = evaluations_fixtures.add_systems
upload = evaluations_fixtures.upload
make_live_study = evaluations_fixtures.make_live_study
make_rater = evaluations_fixtures.make_rater
rater_profile = evaluations_fixtures.rater_profile

START = datetime(2026, 1, 1, tzinfo=UTC)
NOW = START + timedelta(days=10)  # inside the first period
BASE_SYSTEMS = ("base-a", "base-b")
POLICY_TEXT = "Every provider is sampled alike; every submission's result is published."
PARAMETERS = {
    "period_days": 30,
    "prerelease_cap": 2,
    "window_days": 14,
    "provisional_votes": 100,
    "retire_after_votes": 300,
    "retire_newer_required": 2,
}
PROVIDER_NAMES = {
    LicenseClass.PROPRIETARY: "Gamma AI",
    LicenseClass.OPEN_WEIGHTS: "Open Weights Co",
    LicenseClass.OPEN_SOURCE: "Commons Lab",
}


def integrity_snapshot() -> dict[str, Any]:
    """Everything a refused call must leave as it was: rows, parameters and the audit log."""
    return {
        "providers": sorted(Provider.objects.values_list("pk", "name", "slug", "organization_id")),
        "leaderboards": sorted(
            PublicLeaderboard.objects.values_list("pk", "slug", *services.PARAMETERS),
        ),
        "policy_versions": sorted(PolicyVersion.objects.values_list("pk", "number", "text")),
        "submissions": sorted(Submission.objects.values_list("pk", "provider_id", "system_id", "prerelease")),
        "results": PublishedResult.objects.count(),
        "releases": PeriodRelease.objects.count(),
        "studies": sorted(Study.objects.values_list("pk", "is_public", "sampling", "status")),
        "systems": sorted(System.objects.values_list("pk", "name", "provider")),
        "responses": Response.objects.count(),
        "audit": AuditEvent.objects.count(),
    }


@pytest.fixture
def public_study(make_live_study) -> Study:
    return make_live_study(systems=BASE_SYSTEMS, items=3)


@pytest.fixture
def provider_organization(db):
    return OrganizationFactory(name="Gamma AI", slug="gamma-ai")


@pytest.fixture
def provider_owner(provider_organization):
    return MembershipFactory(organization=provider_organization, role=Role.OWNER).user


@pytest.fixture
def provider_member(provider_organization):
    return MembershipFactory(organization=provider_organization, role=Role.MEMBER).user


@pytest.fixture
def providers(staff_user, provider_organization) -> dict[str, Provider]:
    return {
        license_class: services.provider_register(
            name=name,
            actor=staff_user,
            organization=provider_organization if license_class == LicenseClass.PROPRIETARY else None,
        )
        for license_class, name in PROVIDER_NAMES.items()
    }


@pytest.fixture
def make_leaderboard(staff_user) -> Callable[..., PublicLeaderboard]:
    def make(study: Study, *, slug: str = "open-arena", **overrides: Any) -> PublicLeaderboard:
        return services.leaderboard_create(
            study=study,
            name="Open Arena",
            slug=slug,
            starts_at=START,
            actor=staff_user,
            policy_text=POLICY_TEXT,
            **{**PARAMETERS, **overrides},
        )

    return make


@pytest.fixture
def leaderboard(make_leaderboard, public_study) -> PublicLeaderboard:
    return make_leaderboard(public_study)


@pytest.fixture
def submit(leaderboard, staff_user) -> Callable[..., Submission]:
    """submit(provider, name, prerelease=False, license_class=None, actor=staff, now=NOW, ...)."""

    def do(
        provider: Provider,
        name: str,
        *,
        prerelease: bool = False,
        license_class: str | None = None,
        actor: Any = None,
        now: datetime = NOW,
        on: PublicLeaderboard | None = None,
        **extra: Any,
    ) -> Submission:
        return services.submission_register(
            leaderboard=on or leaderboard,
            provider=provider,
            name=name,
            license_class=license_class or _license_of(provider),
            prerelease=prerelease,
            actor=actor or staff_user,
            now=now,
            **extra,
        )

    return do


def _license_of(provider: Provider) -> str:
    by_name = {name: license_class for license_class, name in PROVIDER_NAMES.items()}
    return by_name.get(provider.name, LicenseClass.PROPRIETARY)
