"""Builders for the publishing, retirement and release tests: a public study made through the real
evaluation services, its leaderboard, providers and submissions written with the ORM (registered
before any vote), and votes cast through the real `task_next`/`vote_submit` at chosen instants.

Test modules take the fixtures with `from tests.integrity.fixtures_publishing import *` (the
evaluations fixtures they build on come along) and import the plain helpers by name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import storages

from crowdplatform.core.models import AuditEvent
from crowdplatform.integrity.models import (
    LicenseClass,
    PeriodRelease,
    PolicyVersion,
    Provider,
    PublicLeaderboard,
    PublishedResult,
    Submission,
)
from crowdplatform.raters.models import RaterProfile
from evaluations import services
from evaluations.assignment import VoteInput, task_next, vote_submit
from evaluations.models import Study, System, Vote
from tests.evaluations.conftest import add_systems, item_line, jsonl, make_rater, make_study, upload
from tests.money import fund

__all__ = [
    "add_systems",
    "make_leaderboard",
    "make_provider",
    "make_public_study",
    "make_rater",
    "make_study",
    "release_storage",
    "submit",
    "upload",
]

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def release_storage(settings, tmp_path) -> Any:
    """The private storage in this test's own folder: files from other tests never get in the way."""
    settings.STORAGES = {
        **settings.STORAGES,
        "private": {**settings.STORAGES["private"], "OPTIONS": {"location": str(tmp_path / "private")}},
    }
    return storages["private"]


@pytest.fixture
def make_public_study(make_study, add_systems, upload, owner) -> Callable[..., Study]:
    """A launched public study (active sampling) built in stages: each stage registers its systems,
    then uploads its number of items with responses from every system registered so far. (An upload
    needs every registered system's response, so a system registered after the last upload is in no
    item and never gets a vote; systems of earlier stages meet more often.)"""

    def make(*, stages: Sequence[tuple[Sequence[str], int]], votes_per_pair: int = 1) -> Study:
        study = make_study(name="Public arena", sampling="active", votes_per_pair=votes_per_pair)
        fund(study.organization_id, 10_000_000, currency=study.currency)
        registered: list[str] = []
        prompts = 0
        for names, items in stages:
            add_systems(study, names)
            registered += names
            if items:
                upload(study, jsonl(item_line(n, registered) for n in range(prompts, prompts + items)))
                prompts += items
        study = services.study_launch(study=study, actor=owner)
        Study.objects.filter(pk=study.pk).update(is_public=True)
        study.refresh_from_db()
        return study

    return make


@pytest.fixture
def make_leaderboard(staff_user) -> Callable[..., PublicLeaderboard]:
    """A public leaderboard over the study, with policy v1 in effect from its start."""

    def make(study: Study, *, slug: str = "open-arena", starts_at: datetime = T0, **params: Any) -> PublicLeaderboard:
        leaderboard = PublicLeaderboard.objects.create(
            study=study, name="Open arena", slug=slug, starts_at=starts_at, created_by=staff_user, **params
        )
        PolicyVersion.objects.create(
            leaderboard=leaderboard,
            number=1,
            text="One rule for everyone.",
            parameters={"retire_after_votes": leaderboard.retire_after_votes},
            effective_at=starts_at,
            created_by=staff_user,
        )
        return leaderboard

    return make


@pytest.fixture
def make_provider(db) -> Callable[..., Provider]:
    def make(name: str) -> Provider:
        return Provider.objects.create(name=name, slug=name.lower())

    return make


@pytest.fixture
def submit() -> Callable[..., Submission]:
    """Enter the study's system `name` on the leaderboard for `provider`."""

    def make(
        leaderboard: PublicLeaderboard,
        provider: Provider,
        name: str,
        *,
        license_class: str = LicenseClass.PROPRIETARY,
        registered_at: datetime = T0,
        window_ends_at: datetime | None = None,
    ) -> Submission:
        return Submission.objects.create(
            leaderboard=leaderboard,
            provider=provider,
            system=System.objects.get(study=leaderboard.study, name=name),
            license_class=license_class,
            period_start=leaderboard.starts_at,
            registered_at=registered_at,
            window_ends_at=window_ends_at or registered_at + timedelta(days=leaderboard.window_days),
        )

    return make


# --- Plain helpers ------------------------------------------------------------------------------


def vote_at(rater: RaterProfile, study: Study, at: datetime, choice: str = "a") -> Vote | None:
    """The rater's next task in the study, voted at `at`; None when there is none for them."""
    task = task_next(rater=rater, study=study, now=at)
    if task is None:
        return None
    vote, created = vote_submit(task_id=task.pk, rater=rater, data=VoteInput(choice=choice), now=at)
    assert created
    return vote


def votes_cast(rater: RaterProfile, study: Study, *, start: datetime, count: int | None = None) -> list[Vote]:
    """Up to `count` votes (all the rater can cast when None), one minute apart from `start`.
    The choice alternates a, b, tie so every system wins some and loses some."""
    votes: list[Vote] = []
    choices = ("a", "b", "tie")
    while count is None or len(votes) < count:
        vote = vote_at(rater, study, start + timedelta(minutes=len(votes)), choices[len(votes) % 3])
        if vote is None:
            break
        votes.append(vote)
    return votes


def snapshot() -> dict[str, Any]:
    """What a refused or idle call must leave as it was."""
    return {
        "submissions": sorted(
            Submission.objects.values_list("pk", "published_at", "retired_at", "retirement_rule"),
        ),
        "systems": sorted(System.objects.values_list("pk", "retired_at")),
        "results": sorted(PublishedResult.objects.values_list("pk", "submission_id", "votes", "rating")),
        "releases": sorted(PeriodRelease.objects.values_list("pk", "period_start", "chain_sha256")),
        "audit": AuditEvent.objects.count(),
    }


def storage_files(storage: Any, folder: str = "releases") -> list[str]:
    """Every file under `folder` in the storage (recursively), sorted."""
    if not storage.exists(folder):
        return []
    found: list[str] = []
    directories, files = storage.listdir(folder)
    found += [f"{folder}/{name}" for name in files]
    for directory in directories:
        found += storage_files(storage, f"{folder}/{directory}")
    return sorted(found)


def storage_rewrite(storage: Any, name: str, data: bytes) -> None:
    """Replace a stored file's bytes under the same name (what a tamperer would do)."""
    storage.delete(name)
    assert storage.save(name, ContentFile(data)) == name
