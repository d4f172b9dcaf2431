"""Progress, the sampling report and the rater's view of a task."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from evaluations import assignment, selectors
from evaluations.models import Task

pytestmark = pytest.mark.django_db

DAY_1 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
DAY_2 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


def vote(rater, when, choice="a", criteria=None):
    task = assignment.task_next(rater=rater, now=when, rng=random.Random(7))
    assignment.vote_submit(
        task_id=task.pk,
        rater=rater,
        data=assignment.VoteInput(choice=choice, criteria=criteria or {}),
        now=when + timedelta(seconds=30),
    )
    return task


def test_progress_counts_votes_criteria_pace_and_budget(make_live_study, make_rater):
    study = make_live_study(items=2, votes_per_pair=2, budget_cents=1_000)
    now = datetime.now(UTC)
    vote(make_rater(), now - timedelta(minutes=30), "a", {"helpfulness": "a", "accuracy": "tie"})
    vote(make_rater(), now - timedelta(minutes=20), "b", {"helpfulness": "b"})
    assignment.task_next(rater=make_rater(), now=now)

    progress = selectors.study_progress(study, now=now)

    assert progress.votes == 2
    assert progress.gold_votes == 0
    assert progress.target_votes == 4
    assert progress.completion == 0.5
    assert [(s.name, s.votes) for s in progress.systems] == [("sys-a", 2), ("sys-b", 2)]
    assert [(c.name, c.votes, c.a, c.b, c.tie, c.both_bad) for c in progress.criteria] == [
        ("helpfulness", 2, 1, 1, 0, 0),
        ("accuracy", 1, 0, 0, 1, 0),
    ]
    assert progress.open_leases == 1
    assert progress.votes_last_hour == 2
    assert progress.eta_seconds == 3600  # 2 left at 2 per hour
    assert (progress.spent_cents, progress.budget_cents, progress.tasks_affordable) == (50, 1_000, 38)


def test_progress_of_an_empty_study(make_study):
    progress = selectors.study_progress(make_study())

    assert progress.as_dict() == {
        "status": "draft",
        "votes": 0,
        "gold_votes": 0,
        "target_votes": 0,
        "completion": 0.0,
        "systems": [],
        "criteria": [
            {"name": "helpfulness", "votes": 0, "a": 0, "b": 0, "tie": 0, "both_bad": 0},
            {"name": "accuracy", "votes": 0, "a": 0, "b": 0, "tie": 0, "both_bad": 0},
        ],
        "open_leases": 0,
        "skips": 0,
        "flags": 0,
        "votes_last_hour": 0,
        "eta_seconds": None,
        "spent_cents": 0,
        "budget_cents": 100_000,
        "tasks_affordable": 4_000,
    }


def test_sampling_report_per_system_pair_and_day(make_live_study, make_rater):
    study = make_live_study(systems=("sys-a", "sys-b", "sys-c"), items=3, sampling="uniform")
    vote(make_rater(), DAY_1)
    vote(make_rater(), DAY_1)
    task = assignment.task_next(rater=make_rater(), now=DAY_2, rng=random.Random(1))  # sampled, never voted

    report = selectors.sampling_report(study)

    assert report.policy == "uniform"
    assert (report.battles, report.votes) == (3, 2)
    assert sum(system.battles for system in report.systems) == 6  # two systems per battle
    assert sum(system.share for system in report.systems) == pytest.approx(1.0)
    assert [pair.mean_probability for pair in report.pairs] == [0.3333] * len(report.pairs)  # rounded to 4 places
    assert [(day.date.isoformat(), day.battles, day.votes) for day in report.days] == [
        ("2026-11-20", 2, 2),
        ("2026-11-21", 1, 0),
    ]
    day_2 = {system.name: system.battles for system in report.days[1].systems}
    shown = {task.response_a.label, task.response_b.label}
    assert day_2 == {name: int(name in shown) for name in ("sys-a", "sys-b", "sys-c")}


def test_task_view_shows_no_identity(make_live_study, rater_profile):
    make_live_study()
    task = assignment.task_next(rater=rater_profile)

    view = selectors.task_view(Task.objects.get(pk=task.pk))

    assert view.id == str(task.pk)
    assert view.prompt == [{"role": "user", "content": view.prompt[0]["content"]}]
    assert view.response_a == task.response_a.content
    assert view.response_b == task.response_b.content
    exposed = repr(view)
    for hidden in ("sys-a", "sys-b", "Lab"):
        assert f"'{hidden}'" not in exposed


def test_sampling_report_page(client, owner, organization, make_live_study, make_rater):
    study = make_live_study()
    vote(make_rater(), DAY_1)
    client.force_login(owner)

    page = client.get(f"/client/orgs/{organization.slug}/studies/{study.pk}/sampling/").content.decode()

    assert "Share of appearances per system" in page
    assert "2026-11-20" in page
    assert "sys-a vs sys-b" in page


def test_sampling_report_page_empty_state(client, owner, organization, make_study):
    study = make_study()
    client.force_login(owner)

    page = client.get(f"/client/orgs/{organization.slug}/studies/{study.pk}/sampling/").content.decode()

    assert "No battles yet" in page
