"""Skipping a task (with a reason, once) and flagging its content (once per reason)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.http import Http404
from django.utils import timezone

from crowdplatform.core.errors import ApplicationError, ConflictError
from evaluations.assignment import VoteInput, task_flag, task_next, task_skip, vote_submit
from evaluations.models import ContentFlag, Task, TaskStatus
from tests.evaluations.conftest import snapshot

pytestmark = pytest.mark.django_db

SKIP_REASONS = "One of unclear, expertise, language, harmful, broken, other."
FLAG_REASONS = "One of harmful, personal_data, identity, broken, other."


@pytest.fixture
def study(make_live_study):
    return make_live_study(items=1, votes_per_pair=1, lease_seconds=600)


# --- Skip ---------------------------------------------------------------------------------------------


def test_skip_records_the_reason_and_frees_the_slot_for_others(study, make_rater):
    first, second = make_rater(), make_rater()
    now = timezone.now()
    task = task_next(rater=first, now=now)
    assert task_next(rater=second, now=now) is None
    skipped = task_skip(task_id=task.pk, rater=first, reason="expertise", note="  Not my field.  ", now=now)
    skipped.refresh_from_db()
    assert (skipped.status, skipped.skip_reason, skipped.skip_note, skipped.finished_at) == (
        TaskStatus.SKIPPED,
        "expertise",
        "Not my field.",
        now,
    )
    other = task_next(rater=second, now=now)
    assert other.item_pair_id == task.item_pair_id


def test_a_skipped_item_pair_is_never_offered_to_the_same_rater_again(study, make_rater):
    rater = make_rater()
    task = task_next(rater=rater)
    task_skip(task_id=task.pk, rater=rater, reason="unclear")
    assert task_next(rater=rater) is None
    later = timezone.now() + timedelta(days=30)
    assert task_next(rater=rater, now=later) is None
    assert Task.objects.filter(rater=rater).count() == 1


def test_skip_is_idempotent(study, rater_profile):
    task = task_next(rater=rater_profile)
    first = task_skip(task_id=task.pk, rater=rater_profile, reason="harmful", note="graphic")
    before = snapshot()
    again = task_skip(task_id=task.pk, rater=rater_profile, reason="other", note="changed my mind")
    assert again.pk == first.pk
    assert (again.skip_reason, again.skip_note) == ("harmful", "graphic")
    assert snapshot() == before


@pytest.mark.parametrize(
    ("reason", "note", "fields"),
    [
        ("", "", {"reason": [SKIP_REASONS]}),
        ("boring", "", {"reason": [SKIP_REASONS]}),
        ("other", "n" * 501, {"note": ["Up to 500 characters."]}),
    ],
)
def test_skip_needs_a_valid_reason(study, rater_profile, reason, note, fields):
    task = task_next(rater=rater_profile)
    before = snapshot()
    with pytest.raises(ApplicationError) as error:
        task_skip(task_id=task.pk, rater=rater_profile, reason=reason, note=note)
    assert (error.value.status, error.value.fields) == (400, fields)
    assert snapshot() == before
    assert Task.objects.get().status == TaskStatus.LEASED


def test_a_note_of_500_characters_is_fine(study, rater_profile):
    task = task_next(rater=rater_profile)
    assert len(task_skip(task_id=task.pk, rater=rater_profile, reason="other", note="n" * 500).skip_note) == 500


def test_a_voted_task_cannot_be_skipped(study, rater_profile):
    task = task_next(rater=rater_profile)
    vote_submit(task_id=task.pk, rater=rater_profile, data=VoteInput(choice="a"))
    before = snapshot()
    with pytest.raises(ConflictError) as error:
        task_skip(task_id=task.pk, rater=rater_profile, reason="unclear")
    assert error.value.code == "already_voted"
    assert snapshot() == before


def test_a_lapsed_lease_cannot_be_skipped(study, rater_profile):
    now = timezone.now()
    task = task_next(rater=rater_profile, now=now)
    before = snapshot()
    with pytest.raises(ConflictError) as error:
        task_skip(task_id=task.pk, rater=rater_profile, reason="unclear", now=now + timedelta(seconds=600))
    assert error.value.code == "lease_expired"
    assert snapshot() == before


def test_only_the_rater_can_skip_their_task(study, make_rater):
    owner_rater, other = make_rater(), make_rater()
    task = task_next(rater=owner_rater)
    before = snapshot()
    with pytest.raises(Http404):
        task_skip(task_id=task.pk, rater=other, reason="unclear")
    with pytest.raises(Http404):
        task_skip(task_id=uuid.uuid4(), rater=owner_rater, reason="unclear")
    assert snapshot() == before


def test_after_a_skip_the_rater_gets_the_next_item_pair(make_live_study, rater_profile):
    make_live_study(items=2, votes_per_pair=1)
    first = task_next(rater=rater_profile)
    task_skip(task_id=first.pk, rater=rater_profile, reason="language")
    second = task_next(rater=rater_profile)
    assert second.pk != first.pk
    assert second.item_pair_id != first.item_pair_id


# --- Flag ---------------------------------------------------------------------------------------------


def test_flag_records_the_report(study, rater_profile):
    task = task_next(rater=rater_profile)
    flag, created = task_flag(task_id=task.pk, rater=rater_profile, reason="identity", note="  Says it is GPT.  ")
    assert created is True
    flag.refresh_from_db()
    assert (flag.task_id, flag.study, flag.item, flag.rater) == (task.pk, study, task.item_pair.item, rater_profile)
    assert (flag.reason, flag.note) == ("identity", "Says it is GPT.")
    assert Task.objects.get(pk=task.pk).status == TaskStatus.LEASED  # flagging does not end the task


def test_flag_once_per_reason(study, rater_profile):
    task = task_next(rater=rater_profile)
    first, _ = task_flag(task_id=task.pk, rater=rater_profile, reason="harmful", note="violent")
    before = snapshot()
    again, created = task_flag(task_id=task.pk, rater=rater_profile, reason="harmful", note="something else")
    assert (again.pk, created, again.note) == (first.pk, False, "violent")
    assert snapshot() == before
    other, created_other = task_flag(task_id=task.pk, rater=rater_profile, reason="personal_data")
    assert created_other is True
    assert other.pk != first.pk
    assert sorted(ContentFlag.objects.values_list("reason", flat=True)) == ["harmful", "personal_data"]


def test_a_finished_task_can_still_be_flagged(study, rater_profile):
    task = task_next(rater=rater_profile)
    vote_submit(task_id=task.pk, rater=rater_profile, data=VoteInput(choice="tie"))
    _, created = task_flag(task_id=task.pk, rater=rater_profile, reason="broken")
    assert created
    assert ContentFlag.objects.count() == 1


@pytest.mark.parametrize(
    ("reason", "note", "fields"),
    [
        ("", "", {"reason": [FLAG_REASONS]}),
        ("spam", "", {"reason": [FLAG_REASONS]}),
        ("other", "n" * 1001, {"note": ["Up to 1000 characters."]}),
    ],
)
def test_flag_needs_a_valid_reason(study, rater_profile, reason, note, fields):
    task = task_next(rater=rater_profile)
    before = snapshot()
    with pytest.raises(ApplicationError) as error:
        task_flag(task_id=task.pk, rater=rater_profile, reason=reason, note=note)
    assert (error.value.status, error.value.fields) == (400, fields)
    assert snapshot() == before


def test_only_the_rater_can_flag_their_task(study, make_rater):
    owner_rater, other = make_rater(), make_rater()
    task = task_next(rater=owner_rater)
    before = snapshot()
    with pytest.raises(Http404):
        task_flag(task_id=task.pk, rater=other, reason="harmful")
    assert snapshot() == before
