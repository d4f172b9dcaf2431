"""Leasing tasks: who gets what, how often, in which order, and when nothing is left."""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from crowdplatform.raters import services as rater_services
from crowdplatform.raters.models import ApplicationStatus, ExpertiseDomain, QualificationTest
from evaluations import sampling, services
from evaluations.assignment import VoteInput, leases_expire, task_next, task_skip, vote_submit
from evaluations.models import ItemPair, PairStat, Study, StudyStatus, System, Task, TaskStatus
from tests.evaluations.conftest import PAY, FixedRandom, cast_vote, items_jsonl, snapshot

pytestmark = pytest.mark.django_db

THREE = ("sys-a", "sys-b", "sys-c")


def open_leases(study: Study) -> list[Task]:
    return list(Task.objects.filter(study=study, status=TaskStatus.LEASED))


# --- Nothing to hand out -------------------------------------------------------------------------------


def test_nothing_without_a_live_study(make_study, add_systems, upload, rater_profile):
    assert task_next(rater=rater_profile) is None
    draft = make_study()
    add_systems(draft)
    upload(draft, items_jsonl(2))
    assert task_next(rater=rater_profile) is None
    assert Task.objects.count() == 0


@pytest.mark.parametrize("status", [StudyStatus.PAUSED, StudyStatus.COMPLETED, StudyStatus.ARCHIVED])
def test_nothing_from_a_study_that_is_not_live(make_live_study, rater_profile, status):
    study = make_live_study()
    Study.objects.filter(pk=study.pk).update(status=status)
    before = snapshot()
    assert task_next(rater=rater_profile) is None
    assert snapshot() == before


def test_a_paused_study_hands_out_again_when_resumed(make_live_study, rater_profile, owner):
    study = make_live_study()
    services.study_pause(study=study, actor=owner)
    assert task_next(rater=rater_profile) is None
    services.study_resume(study=study, actor=owner)
    assert task_next(rater=rater_profile).study == study


@pytest.mark.parametrize("budget_tasks", [2, 100])
def test_nothing_beyond_the_budget_counting_open_leases(make_live_study, make_rater, budget_tasks):
    """Both the locked path (few affordable tasks) and the parallel one (many) stop at the budget."""
    study = make_live_study(items=200, votes_per_pair=1, budget_cents=budget_tasks * PAY)
    raters = [make_rater() for _ in range(budget_tasks + 1)]
    for rater in raters[:budget_tasks]:
        assert task_next(rater=rater) is not None
    before = snapshot()
    assert task_next(rater=raters[-1]) is None
    assert snapshot() == before
    assert Task.objects.filter(study=study, status=TaskStatus.LEASED).count() == budget_tasks


def test_budget_spent_on_votes_and_leases_frees_when_a_lease_lapses(make_live_study, make_rater):
    study = make_live_study(items=5, votes_per_pair=1, budget_cents=2 * PAY, lease_seconds=600)
    first, second, third = make_rater(), make_rater(), make_rater()
    now = timezone.now()
    cast_vote(first, now=now)
    lease = task_next(rater=second, now=now)
    assert lease is not None
    assert task_next(rater=third, now=now) is None
    later = now + timedelta(seconds=600)
    assert task_next(rater=third, now=later) is not None
    assert task_next(rater=make_rater(), now=later) is None
    # The vote, the lapsed lease (not yet marked) and the lease that replaced it.
    assert sorted(Task.objects.filter(study=study).values_list("rater", "status")) == [
        (first.pk, TaskStatus.SUBMITTED),
        (second.pk, TaskStatus.LEASED),
        (third.pk, TaskStatus.LEASED),
    ]


def test_a_raised_budget_opens_tasks_again(make_live_study, make_rater, owner):
    study = make_live_study(items=5, votes_per_pair=1, budget_cents=PAY)
    assert task_next(rater=make_rater()) is not None
    rater = make_rater()
    assert task_next(rater=rater) is None
    services.study_budget_set(study=study, actor=owner, budget_cents=2 * PAY)
    assert task_next(rater=rater) is not None


@pytest.mark.parametrize(
    ("requirements", "rater_kwargs"),
    [
        ({"languages": ["de"]}, {"languages": [("en", "native")]}),
        ({"languages": ["de"]}, {"languages": [("de", "basic")]}),
        ({"countries": ["FR", "BE"]}, {"country": "DE"}),
        ({"domains": ["medicine"]}, {"domains": ["law"]}),
    ],
)
def test_nothing_for_a_rater_who_does_not_meet_the_requirements(
    make_live_study, make_rater, requirements, rater_kwargs
):
    ExpertiseDomain.objects.get_or_create(slug="medicine", defaults={"name": "Medicine"})
    make_live_study(requirements=requirements)
    before = snapshot()
    assert task_next(rater=make_rater(**rater_kwargs)) is None
    assert snapshot() == before


def test_requirements_met_one_each(make_live_study, make_rater):
    ExpertiseDomain.objects.get_or_create(slug="medicine", defaults={"name": "Medicine"})
    make_live_study(requirements={"languages": ["de", "fr"], "countries": ["FR"], "domains": ["medicine"]})
    rater = make_rater(languages=[("fr", "professional")], country="FR", domains=["medicine", "law"])
    assert task_next(rater=rater) is not None


def test_a_qualification_must_be_held_with_the_minimum_score(make_live_study, make_rater, staff_user):
    domain, _ = ExpertiseDomain.objects.get_or_create(slug="medicine", defaults={"name": "Medicine"})
    test = QualificationTest.objects.create(name="Medical accuracy", domain=domain, language="en")
    make_live_study(requirements={"qualifications": [{"test_id": test.pk, "min_score": 0.8}]})
    weak, strong, none = make_rater(), make_rater(), make_rater()
    rater_services.qualification_grant(profile=weak, test=test, score=0.7, reason="interview", actor=staff_user)
    rater_services.qualification_grant(profile=strong, test=test, score=0.8, reason="interview", actor=staff_user)
    assert task_next(rater=none) is None
    assert task_next(rater=weak) is None
    assert task_next(rater=strong) is not None
    assert Task.objects.count() == 1


@pytest.mark.parametrize(
    "status",
    [ApplicationStatus.DRAFT, ApplicationStatus.APPLIED, ApplicationStatus.REJECTED, ApplicationStatus.SUSPENDED],
)
def test_nothing_for_a_rater_who_is_not_approved(make_live_study, make_rater, status):
    make_live_study()
    before = snapshot()
    assert task_next(rater=make_rater(status=status)) is None
    assert snapshot() == before


def test_nothing_for_a_deactivated_account(make_live_study, make_rater):
    make_live_study()
    assert task_next(rater=make_rater(active=False)) is None
    assert Task.objects.count() == 0


def test_suspension_through_the_raters_service_stops_new_tasks(make_live_study, make_rater, staff_user):
    make_live_study(items=3)
    rater = make_rater()
    cast_vote(rater)
    rater_services.rater_status_decide(profile=rater, decision="suspend", reason="Too fast", actor=staff_user)
    assert task_next(rater=rater) is None
    rater_services.rater_status_decide(profile=rater, decision="reinstate", actor=staff_user)
    assert task_next(rater=rater) is not None


# --- One lease at a time, each item pair once ---------------------------------------------------------


def test_asking_twice_returns_the_same_open_lease(make_live_study, rater_profile):
    study = make_live_study(items=5)
    first = task_next(rater=rater_profile)
    second = task_next(rater=rater_profile)
    assert first.pk == second.pk
    assert Task.objects.filter(study=study).count() == 1
    assert task_next(rater=rater_profile, study=study).pk == first.pk


def test_the_lease_is_filled_in(make_live_study, rater_profile):
    study = make_live_study(lease_seconds=900)
    now = timezone.now()
    task = task_next(rater=rater_profile, now=now)
    task.refresh_from_db()
    pair = task.item_pair
    assert (task.study, task.rater, task.status, task.is_gold) == (study, rater_profile, TaskStatus.LEASED, False)
    assert {task.response_a_id, task.response_b_id} == {pair.response_low_id, pair.response_high_id}
    assert (task.leased_at, task.expires_at, task.finished_at) == (now, now + timedelta(seconds=900), None)
    assert (task.sampling_policy, task.sampling_probability) == ("uniform", 1.0)
    assert (task.skip_reason, task.skip_note) == ("", "")


def test_a_rater_never_gets_an_item_pair_twice(make_live_study, rater_profile):
    study = make_live_study(items=4, votes_per_pair=3)
    seen = []
    for turn in range(4):
        task = task_next(rater=rater_profile)
        seen.append(task.item_pair_id)
        if turn % 2:
            vote_submit(task_id=task.pk, rater=rater_profile, data=VoteInput(choice="a"))
        else:
            task_skip(task_id=task.pk, rater=rater_profile, reason="unclear")
    assert sorted(seen) == sorted(ItemPair.objects.filter(study=study).values_list("pk", flat=True))
    assert task_next(rater=rater_profile) is None


def test_item_pairs_fill_up_before_new_ones_open(make_live_study, make_rater):
    make_live_study(items=3, votes_per_pair=3)
    voted = cast_vote(make_rater())
    task = task_next(rater=make_rater())
    assert task.item_pair.item_id == voted.item_id


def test_only_the_asked_study_is_considered(make_live_study, rater_profile):
    first = make_live_study(name="First")
    second = make_live_study(name="Second", systems=("x", "y"))
    task = task_next(rater=rater_profile, study=second)
    assert task.study == second
    assert task_next(rater=rater_profile, study=first).pk == task.pk  # the open lease comes first
    vote_submit(task_id=task.pk, rater=rater_profile, data=VoteInput(choice="tie"))
    assert task_next(rater=rater_profile).study == first  # the earliest launched


# --- Overlap ------------------------------------------------------------------------------------------


def test_overlap_counts_open_leases_and_votes(make_live_study, make_rater):
    study = make_live_study(items=1, votes_per_pair=2)
    first, second, third = make_rater(), make_rater(), make_rater()
    lease_one = task_next(rater=first)
    lease_two = task_next(rater=second)
    assert lease_one.item_pair_id == lease_two.item_pair_id
    before = snapshot()
    assert task_next(rater=third) is None
    assert snapshot() == before
    vote_submit(task_id=lease_one.pk, rater=first, data=VoteInput(choice="a"))
    assert task_next(rater=third) is None  # one vote and one open lease: full
    task_skip(task_id=lease_two.pk, rater=second, reason="expertise")
    lease_three = task_next(rater=third)
    assert lease_three.item_pair_id == lease_one.item_pair_id
    vote_submit(task_id=lease_three.pk, rater=third, data=VoteInput(choice="b"))
    assert ItemPair.objects.get(study=study).votes == 2
    assert task_next(rater=make_rater()) is None


def test_every_free_slot_is_found_however_many_leases_are_open(make_live_study, make_rater):
    """Open leases on the first item pairs must not hide the free ones behind them."""
    study = make_live_study(items=12, votes_per_pair=1)
    raters = [make_rater() for _ in range(13)]
    leases = [task_next(rater=rater) for rater in raters]
    assert all(lease is not None for lease in leases[:12])
    assert leases[12] is None
    assert len({lease.item_pair_id for lease in leases[:12]}) == 12
    assert len(open_leases(study)) == 12


def test_expired_leases_go_back_to_the_pool(make_live_study, make_rater):
    study = make_live_study(items=1, votes_per_pair=1, lease_seconds=600)
    first, second = make_rater(), make_rater()
    now = timezone.now()
    lease = task_next(rater=first, now=now)
    assert task_next(rater=second, now=now + timedelta(seconds=599)) is None
    taken = task_next(rater=second, now=now + timedelta(seconds=600))  # lapsed at expires_at exactly
    assert taken.item_pair_id == lease.item_pair_id
    # The first rater's lease is marked expired when they ask again; the slot is taken meanwhile.
    assert task_next(rater=first, now=now + timedelta(seconds=601)) is None
    lease.refresh_from_db()
    assert (lease.status, lease.finished_at) == (TaskStatus.EXPIRED, now + timedelta(seconds=601))
    assert Task.objects.filter(study=study, status=TaskStatus.LEASED).get() == taken


def test_a_rater_may_get_back_the_item_pair_of_a_lapsed_lease(make_live_study, rater_profile):
    make_live_study(items=1, votes_per_pair=1, lease_seconds=60)
    now = timezone.now()
    lease = task_next(rater=rater_profile, now=now)
    again = task_next(rater=rater_profile, now=now + timedelta(seconds=61))
    assert again.pk != lease.pk
    assert again.item_pair_id == lease.item_pair_id
    assert list(Task.objects.order_by("leased_at").values_list("status", flat=True)) == ["expired", "leased"]


def test_leases_expire_marks_lapsed_leases_only(make_live_study, make_rater):
    study = make_live_study(items=5, votes_per_pair=1, lease_seconds=600)
    now = timezone.now()
    raters = [make_rater() for _ in range(3)]
    leases = [task_next(rater=rater, now=now) for rater in raters[:2]]
    voted = cast_vote(raters[2], now=now)
    assert leases_expire(now=now + timedelta(seconds=599)) == 0
    assert len(open_leases(study)) == 2
    assert leases_expire(now=now + timedelta(seconds=600)) == 2
    for lease in leases:
        lease.refresh_from_db()
        assert (lease.status, lease.finished_at) == (TaskStatus.EXPIRED, now + timedelta(seconds=600))
    assert Task.objects.get(pk=voted.task_id).status == TaskStatus.SUBMITTED
    assert leases_expire(now=now + timedelta(seconds=700)) == 0


# --- Sides, sampling and gold ---------------------------------------------------------------------------


def test_sides_are_random_and_recorded(make_live_study, rater_profile):
    make_live_study(items=30, votes_per_pair=1)
    rng = random.Random(1234)
    orders = []
    for _ in range(30):
        task = task_next(rater=rater_profile, rng=rng)
        pair = task.item_pair
        orders.append((task.response_a_id, task.response_b_id) == (pair.response_low_id, pair.response_high_id))
        assert {task.response_a_id, task.response_b_id} == {pair.response_low_id, pair.response_high_id}
        task_skip(task_id=task.pk, rater=rater_profile, reason="other")
    assert Counter(orders)[True] > 5
    assert Counter(orders)[False] > 5


@pytest.mark.parametrize(("value", "swapped"), [(0.49, True), (0.5, False), (0.9, False)])
def test_the_side_draw_decides_left_and_right(make_live_study, rater_profile, value, swapped):
    make_live_study(items=1)
    task = task_next(rater=rater_profile, rng=FixedRandom(value))
    pair = task.item_pair
    expected = (
        (pair.response_high_id, pair.response_low_id) if swapped else (pair.response_low_id, pair.response_high_id)
    )
    assert (task.response_a_id, task.response_b_id) == expected
    assert Task.objects.filter(pk=task.pk, response_a_id=expected[0], response_b_id=expected[1]).exists()


def test_uniform_probability_is_recorded(make_live_study, rater_profile):
    make_live_study(systems=THREE, items=2, sampling="uniform")
    task = task_next(rater=rater_profile, rng=random.Random(5))
    assert task.sampling_policy == "uniform"
    assert task.sampling_probability == pytest.approx(1 / 3, abs=1e-15)


@pytest.mark.parametrize("policy", ["uniform", "balanced", "active"])
def test_the_recorded_probability_is_the_policys(make_live_study, rater_profile, policy):
    study = make_live_study(systems=THREE, items=10, sampling=policy, votes_per_pair=5)
    stats = list(PairStat.objects.filter(study=study).order_by("pk"))
    # Uneven history: (votes, low_wins, high_wins) per system pair, and the systems' votes to match.
    for stat, (votes, low_wins, high_wins) in zip(stats, [(8, 7, 1), (3, 1, 1), (3, 0, 3)], strict=True):
        PairStat.objects.filter(pk=stat.pk).update(votes=votes, low_wins=low_wins, high_wins=high_wins)
    systems = list(System.objects.filter(study=study).order_by("pk"))
    for system, count in zip(systems, [11, 11, 6], strict=True):
        System.objects.filter(pk=system.pk).update(votes_count=count)
    states = [
        sampling.PairState(s.pk, s.system_low_id, s.system_high_id, s.votes, s.low_wins, s.high_wins)
        for s in PairStat.objects.filter(study=study)
    ]
    expected = sampling.pair_probabilities(policy, states, {s.pk: s.votes_count for s in System.objects.all()})
    if policy == "balanced":
        assert expected == {stats[1].pk: 0.5, stats[2].pk: 0.5}  # the least-voted two
    task = task_next(rater=rater_profile, rng=random.Random(11))
    assert task.sampling_policy == policy
    assert task.sampling_probability == expected[task.item_pair.pair_stat_id]


def test_full_pairs_are_not_drawn(make_live_study, rater_profile):
    study = make_live_study(systems=THREE, items=1, votes_per_pair=1, sampling="uniform")
    stats = list(PairStat.objects.filter(study=study).order_by("pk"))
    ItemPair.objects.filter(pair_stat__in=stats[:2]).update(votes=1)
    PairStat.objects.filter(pk__in=[s.pk for s in stats[:2]]).update(votes=1, low_wins=1)
    task = task_next(rater=rater_profile, rng=random.Random(0))
    assert task.item_pair.pair_stat_id == stats[2].pk
    assert task.sampling_probability == 1.0


def test_gold_tasks_have_no_sampling_probability(make_live_study, rater_profile):
    make_live_study(items=2, gold=1, gold_rate=0.5)
    task = task_next(rater=rater_profile, rng=FixedRandom(0.2))  # 0.2 < gold rate
    assert (task.is_gold, task.sampling_policy, task.sampling_probability) == (True, "", None)
    assert task.item_pair.is_gold
    assert task.item_pair.item.is_gold


def test_no_gold_above_the_gold_rate(make_live_study, rater_profile):
    make_live_study(items=2, gold=1, gold_rate=0.5)
    task = task_next(rater=rater_profile, rng=FixedRandom(0.5))
    assert (task.is_gold, task.sampling_policy, task.sampling_probability) == (False, "uniform", 1.0)


def test_gold_is_mixed_in_at_the_gold_rate(make_live_study, rater_profile):
    study = make_live_study(items=150, gold=100, gold_rate=0.25, votes_per_pair=1)
    rng = random.Random(2024)
    gold = []
    for _ in range(150):
        task = task_next(rater=rater_profile, rng=rng)
        gold.append(task.is_gold)
        assert (task.sampling_probability is None) is task.is_gold
        task_skip(task_id=task.pk, rater=rater_profile, reason="other")
    share = sum(gold) / len(gold)
    assert 0.15 <= share <= 0.35
    gold_pairs = Task.objects.filter(study=study, is_gold=True).values_list("item_pair", flat=True)
    assert len(set(gold_pairs)) == len(gold_pairs)  # each gold item at most once per rater


def test_gold_has_no_overlap_limit_and_runs_out_per_rater(make_live_study, make_rater):
    study = make_live_study(items=3, gold=1, gold_rate=0.5, votes_per_pair=1)
    raters = [make_rater() for _ in range(3)]
    tasks = [task_next(rater=rater, rng=FixedRandom(0.1)) for rater in raters]
    assert [task.is_gold for task in tasks] == [True, True, True]
    assert len({task.item_pair_id for task in tasks}) == 1
    vote_submit(task_id=tasks[0].pk, rater=raters[0], data=VoteInput(choice="a"))
    fallback = task_next(rater=raters[0], rng=FixedRandom(0.1))  # no unseen gold left: an ordinary pair
    assert (fallback.is_gold, fallback.sampling_policy) == (False, "uniform")
    assert ItemPair.objects.filter(study=study, is_gold=True).get().votes == 1
