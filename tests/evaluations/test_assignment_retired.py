"""A retired system (System.retired_at set) gets no new tasks; its votes and earlier tasks stay."""

from __future__ import annotations

import random

import pytest
from django.utils import timezone

from evaluations.assignment import task_next
from evaluations.models import System, Task, TaskStatus, Vote
from tests.evaluations.conftest import cast_vote

pytestmark = pytest.mark.django_db

THREE = ("sys-a", "sys-b", "sys-c")


def retire(name: str) -> System:
    System.objects.filter(name=name).update(retired_at=timezone.now())
    return System.objects.get(name=name)


def test_no_task_pairs_a_retired_system(make_live_study, make_rater):
    # 2 items x 3 system pairs, one rater each: 6 item pairs, of which 2 are (sys-a, sys-b).
    study = make_live_study(systems=THREE, items=2, votes_per_pair=1)
    retired = retire("sys-c")

    tasks = [task_next(rater=make_rater(), rng=random.Random(seed)) for seed in range(5)]

    given = [task for task in tasks if task is not None]
    assert len(given) == 2
    assert tasks[2:] == [None, None, None]
    for task in given:
        assert retired.pk not in (task.response_a.system_id, task.response_b.system_id)
    assert Task.objects.filter(study=study).count() == 2


def test_the_probabilities_are_over_the_active_systems_only(make_live_study, make_rater):
    make_live_study(systems=THREE, items=2, sampling="uniform")
    retire("sys-b")
    task = task_next(rater=make_rater(), rng=random.Random(1))
    assert {task.response_a.label, task.response_b.label} == {"sys-a", "sys-c"}
    assert task.sampling_probability == 1.0


def test_when_every_pair_has_a_retired_system_there_is_nothing(make_live_study, rater_profile):
    make_live_study(items=2)
    retire("sys-b")
    assert task_next(rater=rater_profile) is None
    assert Task.objects.count() == 0


def test_a_retired_systems_votes_and_open_lease_stay(make_live_study, make_rater):
    make_live_study(items=3)
    vote = cast_vote(make_rater())
    holder = make_rater()
    lease = task_next(rater=holder)
    retire("sys-b")

    assert Vote.objects.get() == vote
    assert task_next(rater=holder) == lease  # the lease already given is still theirs to finish
    assert Task.objects.get(pk=lease.pk).status == TaskStatus.LEASED
    assert task_next(rater=make_rater()) is None
