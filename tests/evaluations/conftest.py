"""Builders for the evaluations domain: studies through the real services, raters ready to work.

Everything here is a factory fixture (`make_*`) or a plain helper, never autouse, so the API and
page tests in this folder keep their own `study` fixtures.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

import pytest

from crowdplatform.accounts.models import AccountType
from crowdplatform.core.models import AuditEvent
from crowdplatform.raters.models import ApplicationStatus, ExpertiseDomain, RaterLanguage, RaterProfile
from evaluations import services
from evaluations.models import (
    ContentFlag,
    Item,
    ItemPair,
    PairStat,
    Response,
    Study,
    System,
    Task,
    Vote,
)
from tests.factories import UserFactory

SYSTEMS = ("sys-a", "sys-b")
CRITERIA = [
    {"name": "helpfulness", "definition": "Answers what was asked."},
    {"name": "accuracy", "definition": "Says nothing false."},
]
PAY = 25  # cents; at 60 s per task that is exactly the 15.00/h floor


class FixedRandom(random.Random):
    """Every draw returns the same number: below 0.5 swaps the sides, below the gold rate picks gold."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def study_input(**overrides: Any) -> services.StudyInput:
    data = services.StudyInput(
        name="Coding help",
        question="Which response helps the user more?",
        criteria=[dict(criterion) for criterion in CRITERIA],
        pay_per_task_cents=PAY,
        est_seconds_per_task=60,
        votes_per_pair=3,
        sampling="uniform",
        budget_cents=100_000,
    )
    return replace(data, **overrides)


def item_line(n: int, systems: Iterable[str] = SYSTEMS, **extra: Any) -> dict[str, Any]:
    return {
        "prompt_id": f"p{n}",
        "prompt": f"Question {n}?",
        "responses": {name: f"{name} answers {n}" for name in systems},
        **extra,
    }


def gold_line(n: int, answer: str = "good") -> dict[str, Any]:
    return {
        "prompt_id": f"gold{n}",
        "prompt": f"Gold question {n}?",
        "responses": {"good": f"The right answer to {n}.", "bad": f"A wrong answer to {n}."},
        "gold": answer,
    }


def jsonl(lines: Iterable[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def items_jsonl(count: int, systems: Sequence[str] = SYSTEMS, *, start: int = 0, gold: int = 0) -> bytes:
    lines = [item_line(n, systems) for n in range(start, start + count)]
    lines += [gold_line(n) for n in range(start, start + gold)]
    return jsonl(lines)


def snapshot() -> dict[str, Any]:
    """Everything a refused call must leave as it was: rows, statuses and counters."""
    return {
        "studies": sorted(Study.objects.values_list("pk", "status", "votes_count", "budget_cents", "name")),
        "systems": sorted(System.objects.values_list("pk", "name", "provider", "votes_count")),
        "items": Item.objects.count(),
        "responses": Response.objects.count(),
        "item_pairs": sorted(ItemPair.objects.values_list("pk", "votes")),
        "pair_stats": sorted(PairStat.objects.values_list("pk", "item_pairs_count", "votes", "low_wins", "high_wins")),
        "tasks": sorted(
            (str(pk), status, reason) for pk, status, reason in Task.objects.values_list("pk", "status", "skip_reason")
        ),
        "votes": Vote.objects.count(),
        "flags": ContentFlag.objects.count(),
        "audit": AuditEvent.objects.count(),
    }


@pytest.fixture
def make_rater(db) -> Callable[..., RaterProfile]:
    """A rater profile, approved by default, speaking English and living in Germany."""

    def make(
        *,
        status: str = ApplicationStatus.APPROVED,
        country: str = "DE",
        languages: Sequence[tuple[str, str]] = (("en", "fluent"),),
        domains: Sequence[str] = (),
        active: bool = True,
    ) -> RaterProfile:
        user = UserFactory(account_type=AccountType.RATER, is_active=active)
        profile = RaterProfile.objects.create(user=user, status=status, country=country, display_name=user.email)
        for code, level in languages:
            RaterLanguage.objects.create(profile=profile, language=code, proficiency=level)
        for slug in domains:
            domain, _ = ExpertiseDomain.objects.get_or_create(slug=slug, defaults={"name": slug.title()})
            profile.domains.add(domain)
        return profile

    return make


@pytest.fixture
def rater_profile(make_rater) -> RaterProfile:
    return make_rater()


@pytest.fixture
def make_study(organization, owner) -> Callable[..., Study]:
    """A draft study created through `services.study_create`; keyword arguments override StudyInput."""

    def make(**overrides: Any) -> Study:
        return services.study_create(organization=organization, actor=owner, data=study_input(**overrides))

    return make


@pytest.fixture
def add_systems(owner) -> Callable[..., list[System]]:
    def add(study: Study, names: Iterable[str] = SYSTEMS) -> list[System]:
        return [services.system_register(study=study, actor=owner, name=name, provider="Lab") for name in names]

    return add


@pytest.fixture
def upload(owner) -> Callable[..., services.ItemsUploaded]:
    def do(study: Study, data: bytes) -> services.ItemsUploaded:
        return services.items_upload(study=study, actor=owner, data=data, filename="items.jsonl")

    return do


@pytest.fixture
def make_live_study(make_study, add_systems, upload, owner) -> Callable[..., Study]:
    """A launched study: systems registered, `items` ordinary and `gold` gold items uploaded."""

    def make(
        *,
        systems: Sequence[str] = SYSTEMS,
        items: int = 3,
        gold: int = 0,
        funds_cents: int = 10_000_000,
        **overrides: Any,
    ) -> Study:
        study = make_study(**overrides)
        if funds_cents:
            fund(study.organization_id, funds_cents, currency=study.currency)
        add_systems(study, systems)
        upload(study, items_jsonl(items, systems, gold=gold))
        return services.study_launch(study=study, actor=owner)

    return make


from tests.money import fund  # noqa: E402


def cast_vote(rater: RaterProfile, choice: str = "a", **kwargs: Any) -> Vote:
    """Lease the rater's next task and vote on it."""
    from evaluations.assignment import VoteInput, task_next, vote_submit

    task = task_next(rater=rater, **kwargs)
    assert task is not None, "no task for the rater"
    vote, created = vote_submit(task_id=task.pk, rater=rater, data=VoteInput(choice=choice))
    assert created
    return vote


def counters_from_votes(study: Study) -> dict[str, Any]:
    """Every counter recomputed from the Vote rows, to compare with the stored ones."""
    item_pairs = dict.fromkeys(ItemPair.objects.filter(study=study).values_list("pk", flat=True), 0)
    stats = {pk: [0, 0, 0] for pk in PairStat.objects.filter(study=study).values_list("pk", flat=True)}
    systems = dict.fromkeys(System.objects.filter(study=study).values_list("pk", flat=True), 0)
    for vote in Vote.objects.filter(study=study).select_related("task__item_pair"):
        pair = vote.task.item_pair
        item_pairs[pair.pk] += 1
        if vote.is_gold:
            continue
        totals = stats[pair.pair_stat_id]
        totals[0] += 1
        winner = {"a": vote.system_a_id, "b": vote.system_b_id}.get(vote.choice)
        if winner is not None:
            totals[1 if winner == min(vote.system_a_id, vote.system_b_id) else 2] += 1
        systems[vote.system_a_id] += 1
        systems[vote.system_b_id] += 1
    return {
        "study": Vote.objects.filter(study=study).count(),
        "item_pairs": item_pairs,
        "pair_stats": {pk: tuple(totals) for pk, totals in stats.items()},
        "systems": systems,
    }


def stored_counters(study: Study) -> dict[str, Any]:
    return {
        "study": Study.objects.get(pk=study.pk).votes_count,
        "item_pairs": dict(ItemPair.objects.filter(study=study).values_list("pk", "votes")),
        "pair_stats": {
            pk: (votes, low, high)
            for pk, votes, low, high in PairStat.objects.filter(study=study).values_list(
                "pk", "votes", "low_wins", "high_wins"
            )
        },
        "systems": dict(System.objects.filter(study=study).values_list("pk", "votes_count")),
    }
