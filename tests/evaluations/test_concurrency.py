"""Many raters at once: the database keeps overlap, leases and counters exact (PostgreSQL only).

SQLite takes no row locks and serializes every writer, so these tests say nothing there and are skipped.
Each thread has its own connection and closes it when done.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from evaluations.assignment import VoteInput, task_next, vote_submit
from evaluations.models import ItemPair, Study, Task, TaskStatus, Vote
from tests.evaluations.conftest import PAY, counters_from_votes, stored_counters
from tests.threads import run_at_once

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs PostgreSQL: row locks (FOR UPDATE SKIP LOCKED) across concurrent connections",
    ),
    pytest.mark.django_db(transaction=True),
]

THREADS = 24


def lease_for(rater, seed: int) -> Callable[[], Any]:
    return lambda: task_next(rater=rater, rng=random.Random(seed))


def assert_overlap_kept(study: Study) -> None:
    held = Counter(
        Task.objects.filter(study=study).exclude(status=TaskStatus.EXPIRED).values_list("item_pair", flat=True)
    )
    assert max(held.values()) <= study.votes_per_pair
    per_rater = Counter(Task.objects.filter(status=TaskStatus.LEASED).values_list("rater", flat=True))
    assert max(per_rater.values()) == 1


@pytest.mark.parametrize(
    "budget_tasks",
    [
        pytest.param(10, id="few-affordable-locks-the-study"),
        pytest.param(1_000, id="many-affordable-skip-locked"),
    ],
)
def test_a_stampede_of_raters_takes_exactly_the_free_slots(make_live_study, make_rater, budget_tasks):
    # 3 items x 1 system pair x overlap 2 = 6 slots.
    study = make_live_study(items=3, votes_per_pair=2, budget_cents=budget_tasks * PAY)
    raters = [make_rater() for _ in range(THREADS)]

    results = run_at_once([lease_for(rater, seed) for seed, rater in enumerate(raters)])

    # Rows busy under another request's lock are retried, never answered with "nothing":
    # the first rush fills every slot, and never more.
    leased = [task for task in results if task is not None]
    assert len(leased) == 6
    assert Task.objects.filter(study=study, status=TaskStatus.LEASED).count() == 6
    assert_overlap_kept(study)
    for rater in raters:
        task_next(rater=rater)
    assert Task.objects.filter(study=study, status=TaskStatus.LEASED).count() == 6
    assert set(Counter(Task.objects.filter(study=study).values_list("item_pair", flat=True)).values()) == {2}
    assert_overlap_kept(study)


def test_a_stampede_never_overruns_the_budget(make_live_study, make_rater):
    study = make_live_study(items=20, votes_per_pair=2, budget_cents=5 * PAY)
    raters = [make_rater() for _ in range(THREADS)]
    results = run_at_once([lease_for(rater, seed) for seed, rater in enumerate(raters)])
    assert sum(task is not None for task in results) == 5
    assert Task.objects.filter(study=study).count() == 5
    assert_overlap_kept(study)


def test_one_rater_asking_many_times_at_once_holds_one_lease(make_live_study, make_rater):
    study = make_live_study(items=10, votes_per_pair=2)
    rater = make_rater()
    results = run_at_once([lease_for(rater, seed) for seed in range(8)])
    lease = Task.objects.filter(study=study).get()  # one task, never two
    assert lease.status == TaskStatus.LEASED
    # Every request gets that one lease.
    assert [task.pk for task in results] == [lease.pk] * 8
    assert task_next(rater=rater).pk == lease.pk


def test_concurrent_votes_keep_every_counter_exact(make_live_study, make_rater):
    # 3 systems -> 3 system pairs; 4 items x 3 pairs x overlap 2 = 24 slots, one per rater.
    study = make_live_study(systems=("sys-a", "sys-b", "sys-c"), items=4, votes_per_pair=2, sampling="balanced")
    raters = [make_rater() for _ in range(THREADS)]
    tasks = [task_next(rater=rater, rng=random.Random(n)) for n, rater in enumerate(raters)]
    assert all(task is not None for task in tasks)
    choices = ["a", "b", "tie", "both_bad"]

    def vote(n: int) -> Callable[[], Any]:
        return lambda: vote_submit(task_id=tasks[n].pk, rater=raters[n], data=VoteInput(choice=choices[n % 4]))

    results = run_at_once([vote(n) for n in range(THREADS)])

    assert all(created for _, created in results)
    assert Vote.objects.filter(study=study).count() == THREADS
    counters = stored_counters(study)
    assert counters == counters_from_votes(study)
    assert counters["study"] == THREADS
    assert set(counters["item_pairs"].values()) == {2}
    assert sum(votes for votes, _, _ in counters["pair_stats"].values()) == THREADS
    assert set(counters["systems"].values()) == {16}
    assert set(ItemPair.objects.filter(study=study).values_list("votes", flat=True)) == {2}


def test_the_same_vote_sent_many_times_at_once_counts_once(make_live_study, make_rater):
    study = make_live_study(items=2, votes_per_pair=2)
    rater = make_rater()
    task = task_next(rater=rater)
    data = VoteInput(choice="a", rationale="Clearer.")

    results = run_at_once([lambda: vote_submit(task_id=task.pk, rater=rater, data=data) for _ in range(8)])

    assert sorted(created for _, created in results) == [False] * 7 + [True]
    assert {vote.pk for vote, _ in results} == {Vote.objects.get().pk}
    counters = stored_counters(study)
    assert counters == counters_from_votes(study)
    assert counters["study"] == 1
