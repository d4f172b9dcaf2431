"""Voting: the vote's fields, the counters it moves, and every way a vote is refused."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

import pytest
from django.http import Http404
from django.utils import timezone

from crowdplatform.core.errors import ApplicationError, ConflictError
from evaluations import assignment, services
from evaluations.assignment import VoteInput, task_next, task_skip, vote_submit
from evaluations.models import ItemPair, PairStat, QualityStatus, Study, System, Task, TaskStatus, Vote
from tests.evaluations.conftest import (
    FixedRandom,
    counters_from_votes,
    gold_line,
    item_line,
    jsonl,
    snapshot,
    stored_counters,
)
from tests.money import fund

pytestmark = pytest.mark.django_db

THREE = ("sys-a", "sys-b", "sys-c")
CHOICES_ERROR = "Choose one of a, b, tie, both_bad."
NO_SWAP, SWAP = FixedRandom(0.9), FixedRandom(0.1)  # without gold, only the side draw reads below 0.5


@pytest.fixture
def earnings(monkeypatch):
    """Every vote `earning_record` was called with, in order."""
    calls: list[Vote] = []

    def record(*, vote: Vote) -> None:
        calls.append(vote)

    monkeypatch.setattr(assignment, "earning_record", record)
    return calls


@pytest.fixture
def study(make_live_study):
    return make_live_study(items=3, votes_per_pair=3, lease_seconds=600)


def systems(study: Study) -> dict[str, System]:
    return {system.name: system for system in study.systems.all()}


# --- An accepted vote -------------------------------------------------------------------------------------


def test_a_vote_records_what_was_shown_and_how_long_it_took(study, rater_profile, earnings):
    now = timezone.now()
    task = task_next(rater=rater_profile, now=now, rng=SWAP)
    names = systems(study)
    vote, created = vote_submit(
        task_id=task.pk,
        rater=rater_profile,
        data=VoteInput(choice="a", criteria={"helpfulness": "a", "accuracy": "tie"}, rationale="  Clearer.  "),
        now=now + timedelta(seconds=12, microseconds=345_678),
    )
    assert created is True
    vote.refresh_from_db()
    assert (vote.task_id, vote.study, vote.item, vote.rater) == (task.pk, study, task.item_pair.item, rater_profile)
    # Swapped: sys-b's response is on the left.
    assert (vote.system_a, vote.system_b) == (names["sys-b"], names["sys-a"])
    assert (vote.choice, vote.criteria, vote.rationale) == ("a", {"helpfulness": "a", "accuracy": "tie"}, "Clearer.")
    assert (vote.is_gold, vote.gold_correct, vote.quality_status, vote.quality_reason) == (
        False,
        None,
        QualityStatus.INCLUDED,
        "",
    )
    assert vote.duration_ms == 12_345
    assert vote.created_at == now + timedelta(seconds=12, microseconds=345_678)
    task.refresh_from_db()
    assert (task.status, task.finished_at) == (TaskStatus.SUBMITTED, vote.created_at)
    assert earnings == [vote]


@pytest.mark.parametrize(
    ("rng", "choice", "wins"),
    [
        (NO_SWAP, "a", (1, 0)),  # sys-a left, and sys-a has the lower id
        (NO_SWAP, "b", (0, 1)),
        (SWAP, "a", (0, 1)),  # sys-b left
        (SWAP, "b", (1, 0)),
        (NO_SWAP, "tie", (0, 0)),
        (SWAP, "both_bad", (0, 0)),
    ],
)
def test_a_vote_moves_every_counter_by_one(study, rater_profile, earnings, rng, choice, wins):
    task = task_next(rater=rater_profile, rng=rng)
    vote, _ = vote_submit(task_id=task.pk, rater=rater_profile, data=VoteInput(choice=choice))
    names = systems(study)
    expected_left = names["sys-b"] if rng is SWAP else names["sys-a"]
    assert vote.system_a == expected_left
    assert ItemPair.objects.get(pk=task.item_pair_id).votes == 1
    assert ItemPair.objects.filter(study=study, votes=0).count() == 2
    stat = PairStat.objects.get()
    assert (stat.votes, stat.low_wins, stat.high_wins) == (1, *wins)
    assert stat.system_low == names["sys-a"]
    assert {name: s.votes_count for name, s in systems(study).items()} == {"sys-a": 1, "sys-b": 1}
    assert Study.objects.get(pk=study.pk).votes_count == 1
    assert len(earnings) == 1


def test_wins_follow_the_systems_not_the_order_of_responses_in_the_upload(
    make_study, add_systems, upload, owner, rater_profile
):
    study = make_study()
    add_systems(study)
    # sys-b's response comes first, so it is the item pair's low response though sys-a has the lower id.
    upload(study, jsonl([{"prompt_id": "p", "prompt": "Q?", "responses": {"sys-b": "B", "sys-a": "A"}}]))
    fund(study.organization_id, 10_000_000)
    services.study_launch(study=study, actor=owner)
    task = task_next(rater=rater_profile, rng=NO_SWAP)
    assert task.response_a.system.name == "sys-b"
    vote_submit(task_id=task.pk, rater=rater_profile, data=VoteInput(choice="a"))
    stat = PairStat.objects.get()
    assert stat.system_high.name == "sys-b"
    assert (stat.votes, stat.low_wins, stat.high_wins) == (1, 0, 1)


def test_counters_match_the_votes_after_many(make_live_study, make_rater, earnings):
    study = make_live_study(systems=THREE, items=4, votes_per_pair=2, sampling="balanced")
    rng = random.Random(99)
    choices = ["a", "b", "tie", "both_bad", "a", "a", "b"]
    accepted = 0
    for n in range(8):
        rater = make_rater()
        for turn in range(3):
            task = task_next(rater=rater, rng=rng)
            if task is None:
                break
            vote_submit(task_id=task.pk, rater=rater, data=VoteInput(choice=choices[(n + turn) % len(choices)]))
            accepted += 1
    assert accepted == 4 * 3 * 2  # every slot filled: 4 items, 3 system pairs, overlap 2
    assert stored_counters(study) == counters_from_votes(study)
    assert stored_counters(study)["study"] == 24
    assert set(stored_counters(study)["item_pairs"].values()) == {2}
    assert sum(votes for votes, _, _ in stored_counters(study)["pair_stats"].values()) == 24
    assert set(stored_counters(study)["systems"].values()) == {16}
    assert len(earnings) == 24
    assert len({vote.pk for vote in earnings}) == 24


def test_earning_record_runs_inside_the_votes_transaction(study, rater_profile, monkeypatch):
    def broken(*, vote: Vote) -> None:
        raise RuntimeError("ledger down")

    monkeypatch.setattr(assignment, "earning_record", broken)
    task = task_next(rater=rater_profile)
    before = snapshot()
    with pytest.raises(RuntimeError, match="ledger down"):
        vote_submit(task_id=task.pk, rater=rater_profile, data=VoteInput(choice="a"))
    assert snapshot() == before
    assert Task.objects.get(pk=task.pk).status == TaskStatus.LEASED


# --- Sending twice -----------------------------------------------------------------------------------------


def test_the_same_vote_again_returns_the_first(study, rater_profile, earnings):
    task = task_next(rater=rater_profile)
    data = VoteInput(choice="b", criteria={"accuracy": "b"}, rationale="Fewer errors.")
    first, created = vote_submit(task_id=task.pk, rater=rater_profile, data=data)
    before = snapshot()
    later = timezone.now() + timedelta(days=1)  # even after the lease would have lapsed
    again, created_again = vote_submit(
        task_id=task.pk,
        rater=rater_profile,
        data=VoteInput(choice="b", criteria={"accuracy": "b"}, rationale=" Fewer errors. "),
        now=later,
    )
    assert (created, created_again) == (True, False)
    assert again.pk == first.pk
    assert snapshot() == before
    assert earnings == [first]


@pytest.mark.parametrize(
    "data",
    [
        VoteInput(choice="a", criteria={"accuracy": "b"}, rationale="Fewer errors."),
        VoteInput(choice="b", criteria={}, rationale="Fewer errors."),
        VoteInput(choice="b", criteria={"accuracy": "b"}, rationale="Other words."),
    ],
)
def test_a_different_vote_on_a_voted_task_is_a_conflict(study, rater_profile, earnings, data):
    task = task_next(rater=rater_profile)
    vote_submit(
        task_id=task.pk,
        rater=rater_profile,
        data=VoteInput(choice="b", criteria={"accuracy": "b"}, rationale="Fewer errors."),
    )
    before = snapshot()
    with pytest.raises(ConflictError) as error:
        vote_submit(task_id=task.pk, rater=rater_profile, data=data)
    assert (error.value.status, error.value.code) == (409, "already_voted")
    assert snapshot() == before
    assert Vote.objects.get().choice == "b"
    assert len(earnings) == 1


# --- Refused ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("late", [timedelta(seconds=600), timedelta(hours=3)])
def test_no_vote_after_the_lease_lapsed(study, rater_profile, earnings, late):
    now = timezone.now()
    task = task_next(rater=rater_profile, now=now)
    before = snapshot()
    with pytest.raises(ConflictError) as error:
        vote_submit(task_id=task.pk, rater=rater_profile, data=VoteInput(choice="a"), now=now + late)
    assert (error.value.status, error.value.code) == (409, "lease_expired")
    assert error.value.message == "The lease on this task has expired; ask for the next task."
    assert snapshot() == before
    assert earnings == []


def test_a_vote_just_before_the_lease_lapses_counts(study, rater_profile):
    now = timezone.now()
    task = task_next(rater=rater_profile, now=now)
    vote, created = vote_submit(
        task_id=task.pk, rater=rater_profile, data=VoteInput(choice="a"), now=now + timedelta(seconds=599.999)
    )
    assert created
    assert vote.duration_ms == 599_999


def test_no_vote_on_a_lease_marked_expired(study, rater_profile):
    now = timezone.now()
    task = task_next(rater=rater_profile, now=now)
    assignment.leases_expire(now=now + timedelta(seconds=601))
    before = snapshot()
    with pytest.raises(ConflictError) as error:
        vote_submit(task_id=task.pk, rater=rater_profile, data=VoteInput(choice="a"), now=now + timedelta(seconds=1))
    assert error.value.code == "lease_expired"
    assert snapshot() == before


def test_no_vote_on_a_skipped_task(study, rater_profile, earnings):
    task = task_next(rater=rater_profile)
    task_skip(task_id=task.pk, rater=rater_profile, reason="unclear")
    before = snapshot()
    with pytest.raises(ConflictError) as error:
        vote_submit(task_id=task.pk, rater=rater_profile, data=VoteInput(choice="a"))
    assert (error.value.code, error.value.message) == ("task_skipped", "You skipped this task.")
    assert snapshot() == before
    assert earnings == []


def test_another_raters_task_is_not_found(study, make_rater, earnings):
    owner_rater, other = make_rater(), make_rater()
    task = task_next(rater=owner_rater)
    before = snapshot()
    with pytest.raises(Http404):
        vote_submit(task_id=task.pk, rater=other, data=VoteInput(choice="a"))
    with pytest.raises(Http404):
        vote_submit(task_id=uuid.uuid4(), rater=owner_rater, data=VoteInput(choice="a"))
    assert snapshot() == before
    assert earnings == []


@pytest.mark.parametrize(
    ("data", "fields"),
    [
        (VoteInput(choice="c"), {"choice": [CHOICES_ERROR]}),
        (VoteInput(choice=""), {"choice": [CHOICES_ERROR]}),
        (VoteInput(choice="A"), {"choice": [CHOICES_ERROR]}),
        (
            VoteInput(choice="a", criteria={"speed": "a", "style": "b"}),
            {"criteria": ["Unknown criterion: speed, style."]},
        ),
        (
            VoteInput(choice="a", criteria={"accuracy": "maybe"}),
            {"criteria": ["Each criterion's choice is one of a, b, tie, both_bad."]},
        ),
        (
            VoteInput(choice="a", criteria=["accuracy"]),  # type: ignore[arg-type]
            {"criteria": ["Give criteria as an object: criterion name -> choice."]},
        ),
        (VoteInput(choice="a", rationale="x" * 5001), {"rationale": ["Keep the rationale to 5000 characters."]}),
        (
            VoteInput(choice="x", criteria={"speed": "a"}, rationale="x" * 5001),
            {
                "choice": [CHOICES_ERROR],
                "criteria": ["Unknown criterion: speed."],
                "rationale": ["Keep the rationale to 5000 characters."],
            },
        ),
    ],
)
def test_an_invalid_vote_names_its_fields(study, rater_profile, earnings, data, fields):
    task = task_next(rater=rater_profile)
    before = snapshot()
    with pytest.raises(ApplicationError) as error:
        vote_submit(task_id=task.pk, rater=rater_profile, data=data)
    assert (error.value.status, error.value.message, error.value.fields) == (400, "The vote is not valid.", fields)
    assert snapshot() == before
    assert earnings == []


def test_a_rationale_of_5000_characters_is_fine(study, rater_profile):
    task = task_next(rater=rater_profile)
    vote, _ = vote_submit(task_id=task.pk, rater=rater_profile, data=VoteInput(choice="a", rationale="x" * 5000))
    assert len(vote.rationale) == 5000


# --- Gold -------------------------------------------------------------------------------------------------


GOLD_PICK = FixedRandom(0.1)  # below the gold rate: gold; below 0.5: sides swapped ("bad" on the left)


@pytest.mark.parametrize(
    ("answer", "choice", "correct"),
    [
        ("good", "b", True),  # swapped, so the good response is on the right
        ("good", "a", False),
        ("good", "tie", False),
        ("good", "both_bad", False),
        ("tie", "tie", True),
        ("tie", "a", False),
        ("both_bad", "both_bad", True),
        ("both_bad", "tie", False),
    ],
)
def test_gold_votes_are_graded(
    make_study, add_systems, upload, owner, rater_profile, earnings, answer, choice, correct
):
    study = make_study(gold_rate=0.5)
    add_systems(study)
    upload(study, jsonl([item_line(0), gold_line(1, answer)]))
    fund(study.organization_id, 10_000_000)
    services.study_launch(study=study, actor=owner)
    task = task_next(rater=rater_profile, rng=GOLD_PICK)
    assert task.is_gold
    assert (task.response_a.label, task.response_b.label) == ("bad", "good")
    vote, _ = vote_submit(task_id=task.pk, rater=rater_profile, data=VoteInput(choice=choice))
    vote.refresh_from_db()
    assert (vote.is_gold, vote.gold_correct, vote.system_a, vote.system_b) == (True, correct, None, None)
    assert ItemPair.objects.get(pk=task.item_pair_id).votes == 1
    assert Study.objects.get(pk=study.pk).votes_count == 1
    assert list(PairStat.objects.values_list("votes", "low_wins", "high_wins")) == [(0, 0, 0)]
    assert set(System.objects.values_list("votes_count", flat=True)) == {0}
    assert earnings == [vote]
