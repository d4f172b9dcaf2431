"""Refreshing the stored signals from votes made through the real domain functions."""

from __future__ import annotations

import math
import random
import statistics
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from crowdplatform.quality import refresh
from crowdplatform.quality.models import RaterSignal, StudySignal
from crowdplatform.quality.refresh import signals_refresh
from crowdplatform.raters.models import RaterProfile
from evaluations.assignment import VoteInput, task_flag, task_next, task_skip, vote_submit
from evaluations.models import Study, Vote
from tests.evaluations import conftest as evaluations_fixtures

add_systems = evaluations_fixtures.add_systems
make_live_study = evaluations_fixtures.make_live_study
make_rater = evaluations_fixtures.make_rater
make_study = evaluations_fixtures.make_study
upload = evaluations_fixtures.upload

SYSTEMS = ("sys-a", "sys-b", "sys-c")
START = timezone.now() - timedelta(days=2)


class Clock:
    """A simulated clock: every vote a little later than the last."""

    def __init__(self) -> None:
        self.at = START

    def tick(self, seconds: float = 5) -> datetime:
        self.at += timedelta(seconds=seconds)
        return self.at

    def later(self) -> datetime:
        """A refresh time at which every vote so far has settled."""
        return self.at + timedelta(seconds=refresh.SETTLE_SECONDS + 1)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def vote(
    study: Study,
    rater: RaterProfile,
    clock: Clock,
    *,
    choice: str = "a",
    seconds: float = 30,
    criteria: dict[str, str] | None = None,
    rng: random.Random | None = None,
) -> Vote | None:
    task = task_next(rater=rater, study=study, now=clock.tick(), rng=rng or random.Random(0))
    if task is None:
        return None
    made, created = vote_submit(
        task_id=task.pk,
        rater=rater,
        data=VoteInput(choice=choice, criteria=criteria or {}),
        now=clock.tick(seconds),
    )
    assert created
    return made


def crowd_votes(study: Study, raters: list[RaterProfile], clock: Clock, *, rounds: int, seed: int) -> int:
    """Each rater votes `rounds` times, round-robin, with mixed answers, times and criteria."""
    rng = random.Random(seed)
    made = 0
    for _ in range(rounds):
        for index, rater in enumerate(raters):
            choice = "a" if index == 0 else rng.choice(["a", "b", "b", "tie", "both_bad"])
            criteria = {"helpfulness": rng.choice(["a", "b"]), "accuracy": choice}
            seconds = 2 if index == 1 else rng.uniform(20, 60)
            made += vote(study, rater, clock, choice=choice, seconds=seconds, criteria=criteria, rng=rng) is not None
    return made


def rater_rows() -> dict[tuple[int, int | None], tuple[Any, ...]]:
    return {
        (row.rater_id, row.study_id): tuple(getattr(row, name) for name in refresh.SIGNAL_FIELDS)
        for row in RaterSignal.objects.all()
    }


def study_rows() -> dict[int, tuple[Any, ...]]:
    """The study signals (not the running alpha sums, which differ in the last bits by fold order)."""
    fields = [f.name for f in StudySignal._meta.fields if f.name not in ("id", "refreshed_at", "alpha_parts")]
    return {row["study"]: tuple(row[name] for name in fields) for row in StudySignal.objects.values(*fields)}


@pytest.fixture
def study(make_live_study) -> Study:
    return make_live_study(systems=SYSTEMS, items=8, gold=4, gold_rate=0.2, votes_per_pair=3)


@pytest.fixture
def raters(make_rater) -> list[RaterProfile]:
    return [make_rater() for _ in range(5)]


def test_a_full_refresh_stores_each_raters_counts(study, raters, clock):
    crowd_votes(study, raters, clock, rounds=6, seed=1)
    report = signals_refresh(full=True, now=clock.later())

    assert report.changed == {study.pk: {rater.pk for rater in raters}}
    for rater in raters:
        votes = Vote.objects.filter(study=study, rater=rater)
        row = RaterSignal.objects.get(rater=rater, study=study)
        assert row.votes == votes.count() == 6
        assert row.gold_votes == votes.filter(is_gold=True).count()
        assert row.gold_correct == votes.filter(gold_correct=True).count()
        assert row.a_choices == votes.filter(choice="a").count()
        assert row.b_choices == votes.filter(choice="b").count()
        assert row.refreshed_at == clock.later()
    always_a = RaterSignal.objects.get(rater=raters[0], study=study)
    assert (always_a.longest_run, always_a.longest_run_choice) == (6, "a")
    assert always_a.position_p_value == 2 * 0.5**6
    summary = StudySignal.objects.get(study=study)
    assert summary.votes == 30
    assert summary.watermark_vote_id == Vote.objects.latest("id").pk
    assert summary.speed_typical_seconds == pytest.approx(  # exp of the median log-time
        math.exp(statistics.median(math.log(v.duration_ms / 1000) for v in Vote.objects.filter(study=study)))
    )
    assert set(summary.alpha_by_criterion) == {"helpfulness", "accuracy"}
    assert sum(summary.gold_accuracy_histogram) == RaterSignal.objects.filter(study=study, gold_votes__gt=0).count()


def test_agreement_is_about_the_systems_not_the_sides(make_live_study, make_rater, clock):
    # One item, two systems: one item pair. Three raters prefer the same response, whatever side it is on.
    study = make_live_study(systems=("sys-a", "sys-b"), items=1, votes_per_pair=3)
    raters = [make_rater() for _ in range(3)]
    for rater, side in zip(raters, (0.1, 0.9, 0.1), strict=True):  # below 0.5 swaps the sides
        task = task_next(rater=rater, study=study, now=clock.tick(), rng=evaluations_fixtures.FixedRandom(side))
        sys_a_left = task.response_a.system.name == "sys-a"
        choice = "a" if sys_a_left else "b"  # always sys-a
        vote_submit(task_id=task.pk, rater=rater, data=VoteInput(choice=choice), now=clock.tick(20))
    assert {v.choice for v in Vote.objects.all()} == {"a", "b"}  # the sides did differ
    signals_refresh(now=clock.later())
    for rater in raters:
        row = RaterSignal.objects.get(rater=rater, study=study)
        assert (row.agreement_votes, row.agreement) == (1, 1.0)
    assert StudySignal.objects.get(study=study).alpha is None  # one label only: alpha undefined


def test_incremental_after_new_votes_gives_the_same_rows_as_a_full_refresh(study, raters, clock, make_rater):
    crowd_votes(study, raters[:3], clock, rounds=4, seed=2)
    signals_refresh(now=clock.later())
    crowd_votes(study, [*raters, make_rater()], clock, rounds=3, seed=3)

    report = signals_refresh(now=clock.later())
    assert not report.full
    assert report.changed[study.pk]
    incremental_raters, incremental_studies = rater_rows(), study_rows()

    RaterSignal.objects.all().delete()
    StudySignal.objects.all().delete()
    signals_refresh(full=True, now=clock.later())
    assert rater_rows() == incremental_raters
    assert study_rows() == incremental_studies


def test_a_second_refresh_with_nothing_new_changes_nothing(study, raters, clock):
    crowd_votes(study, raters, clock, rounds=3, seed=4)
    signals_refresh(now=clock.later())
    before = rater_rows()

    report = signals_refresh(now=clock.later() + timedelta(minutes=5))
    assert report.changed == {}
    assert report.studies == 0
    assert rater_rows() == before
    # A full refresh recomputes everything and also finds nothing different.
    assert signals_refresh(full=True, now=clock.later()).changed == {}


def test_a_vote_in_one_study_does_not_touch_another_studys_rows(make_live_study, raters, clock):
    first = make_live_study(systems=SYSTEMS, items=4, votes_per_pair=3)
    second = make_live_study(systems=SYSTEMS, items=4, votes_per_pair=3)
    crowd_votes(first, raters, clock, rounds=2, seed=5)
    crowd_votes(second, raters, clock, rounds=2, seed=6)
    done = clock.later()
    signals_refresh(now=done)
    second_rows = {row.pk: (row.refreshed_at, row.votes) for row in RaterSignal.objects.filter(study=second)}
    second_summary = StudySignal.objects.get(study=second).refreshed_at

    vote(first, raters[0], clock, choice="b")
    report = signals_refresh(now=clock.later())

    assert set(report.changed) == {first.pk}
    assert report.studies == 1
    assert {row.pk: (row.refreshed_at, row.votes) for row in RaterSignal.objects.filter(study=second)} == second_rows
    assert StudySignal.objects.get(study=second).refreshed_at == second_summary == done
    assert RaterSignal.objects.get(study=first, rater=raters[0]).votes == 3


def test_the_overall_row_sums_the_studies(make_live_study, raters, clock):
    first = make_live_study(systems=SYSTEMS, items=4, gold=2, gold_rate=0.3, votes_per_pair=3)
    second = make_live_study(systems=SYSTEMS, items=4, gold=2, gold_rate=0.3, votes_per_pair=3)
    crowd_votes(first, raters, clock, rounds=4, seed=7)
    crowd_votes(second, raters, clock, rounds=3, seed=8)
    task = task_next(rater=raters[2], study=second, now=clock.tick())
    task_skip(task_id=task.pk, rater=raters[2], reason="unclear", now=clock.tick())
    signals_refresh(now=clock.later())

    for rater in raters:
        overall = RaterSignal.objects.get(rater=rater, study=None)
        per_study = list(RaterSignal.objects.filter(rater=rater, study__isnull=False))
        assert len(per_study) == 2
        for name in ("votes", "skips", "gold_votes", "gold_correct", "agreement_votes", "a_choices", "b_choices"):
            assert getattr(overall, name) == sum(getattr(row, name) for row in per_study), name
        assert overall.longest_run == max(row.longest_run for row in per_study)
        assert overall.median_seconds is None
        agreeing = sum(row.agreement_sum for row in per_study)
        if overall.agreement_votes:
            assert overall.agreement == round(agreeing / overall.agreement_votes, 6)
    assert RaterSignal.objects.get(rater=raters[2], study=None).skips == 1


def test_a_skip_alone_is_picked_up(study, raters, clock):
    crowd_votes(study, raters, clock, rounds=2, seed=9)
    signals_refresh(now=clock.later())
    task = task_next(rater=raters[3], study=study, now=clock.tick())
    task_skip(task_id=task.pk, rater=raters[3], reason="expertise", now=clock.tick())

    report = signals_refresh(now=clock.later())
    assert report.changed == {study.pk: {raters[3].pk}}
    assert RaterSignal.objects.get(rater=raters[3], study=study).skips == 1
    assert RaterSignal.objects.get(rater=raters[3], study=None).skips == 1


def test_a_vote_committed_below_the_watermark_is_caught_by_the_count(study, raters, clock, monkeypatch):
    """A vote whose transaction commits after a refresh, with an id below the newest one counted,
    is not above the watermark: the study's vote count shows it, and the study is recomputed whole."""
    monkeypatch.setattr(refresh, "MODELS_INCREMENTAL_MAX_VOTES", 5)
    crowd_votes(study, raters, clock, rounds=3, seed=10)
    late = Vote.objects.filter(study=study).order_by("id")[3]
    hidden = Vote.objects.filter(pk=late.pk)
    # Simulate "not committed yet": the first refresh does not see it.
    monkeypatch.setattr(refresh, "_vote_arrays", _hiding(refresh._vote_arrays, late.pk))
    Study.objects.filter(pk=study.pk).update(votes_count=F("votes_count") - 1)
    signals_refresh(now=clock.later())
    assert StudySignal.objects.get(study=study).votes == Vote.objects.filter(study=study).count() - 1
    monkeypatch.undo()
    monkeypatch.setattr(refresh, "MODELS_INCREMENTAL_MAX_VOTES", 5)
    Study.objects.filter(pk=study.pk).update(votes_count=F("votes_count") + 1)  # "it commits"

    report = signals_refresh(now=clock.later())
    assert (report.studies, report.whole, report.folded, report.recounted) == (1, 1, 0, 1)
    assert hidden.exists()
    rows = rater_rows()
    RaterSignal.objects.all().delete()
    StudySignal.objects.all().delete()
    signals_refresh(full=True, now=clock.later())
    assert _without_models(rater_rows()) == _without_models(rows)


def _hiding(load: Any, vote_id: int) -> Any:
    def without(votes: Any, study: Study) -> Any:
        return load(votes.exclude(pk=vote_id), study)

    return without


def _without_models(rows: dict[Any, tuple[Any, ...]]) -> dict[Any, tuple[Any, ...]]:
    """Rows without the model skills, which incremental refreshes of large studies keep from the last full one."""
    skip = {refresh.SIGNAL_FIELDS.index("ds_skill"), refresh.SIGNAL_FIELDS.index("nbt_skill")}
    return {key: tuple(v for i, v in enumerate(values) if i not in skip) for key, values in rows.items()}


@pytest.mark.parametrize("rounds", [1, 3])
def test_folding_new_votes_into_a_large_study_gives_the_rows_of_a_whole_refresh(
    study, raters, clock, make_rater, monkeypatch, rounds
):
    monkeypatch.setattr(refresh, "MODELS_INCREMENTAL_MAX_VOTES", 5)  # every study here is "large"
    crowd_votes(study, raters[:3], clock, rounds=4, seed=21)
    signals_refresh(now=clock.later())
    crowd_votes(study, [*raters, make_rater()], clock, rounds=rounds, seed=22)
    task = task_next(rater=raters[4], study=study, now=clock.tick())
    task_skip(task_id=task.pk, rater=raters[4], reason="unclear", now=clock.tick())

    report = signals_refresh(now=clock.later())
    assert (report.whole, report.folded, report.models_run) == (0, 1, 0)
    assert report.votes < Vote.objects.filter(study=study).count() + 40  # the new votes and their pairs' others
    folded_raters, folded_study = rater_rows(), study_rows()
    folded_state = {
        (row.rater_id, row.study_id): (round(row.agreement_sum, 9), row.trailing_run, row.trailing_choice)
        for row in RaterSignal.objects.all()
    }

    RaterSignal.objects.all().delete()
    StudySignal.objects.all().delete()
    signals_refresh(now=clock.later())  # no state: whole
    assert _without_models(rater_rows()) == _without_models(folded_raters)
    assert study_rows() == folded_study
    assert {
        (row.rater_id, row.study_id): (round(row.agreement_sum, 9), row.trailing_run, row.trailing_choice)
        for row in RaterSignal.objects.all()
    } == folded_state


def test_flags_and_exclusions_are_counted_without_new_votes(study, raters, clock):
    crowd_votes(study, raters, clock, rounds=2, seed=11)
    signals_refresh(now=clock.later())
    task = task_next(rater=raters[0], study=study, now=clock.tick())
    task_flag(task_id=task.pk, rater=raters[0], reason="broken")
    Vote.objects.filter(pk__in=list(Vote.objects.filter(rater=raters[1]).values_list("pk", flat=True)[:2])).update(
        quality_status="excluded", quality_reason="too_fast"
    )

    signals_refresh(now=clock.later())
    summary = StudySignal.objects.get(study=study)
    assert summary.flags == 1
    assert summary.excluded == {"too_fast": 2}


def test_too_fast_votes_against_the_studys_threshold(make_live_study, make_rater, clock):
    study = make_live_study(systems=SYSTEMS, items=10, votes_per_pair=3)
    slow = [make_rater() for _ in range(4)]
    hasty = make_rater()
    for _ in range(6):
        for rater in slow:
            vote(study, rater, clock, seconds=40 + random.Random(rater.pk).uniform(-1, 1))
    vote(study, hasty, clock, seconds=1)
    signals_refresh(now=clock.later())

    summary = StudySignal.objects.get(study=study)
    row = RaterSignal.objects.get(rater=hasty, study=study)
    threshold = round(math.exp(math.log(summary.speed_typical_seconds) - 3 * summary.speed_log_sd), 2)
    assert row.fast_threshold_seconds == threshold > 1
    assert row.fast_votes == 1
    assert row.median_seconds == 1.0
    assert all(r.fast_votes == 0 for r in RaterSignal.objects.filter(study=study).exclude(rater=hasty))


def _incremental_queries(study: Study, raters: list[RaterProfile], clock: Clock, rounds: int, seed: int) -> int:
    crowd_votes(study, raters, clock, rounds=rounds, seed=seed)
    with CaptureQueriesContext(connection) as captured:
        report = signals_refresh(now=clock.later())
    assert report.changed
    return len(captured.captured_queries)


def test_incremental_query_count_does_not_grow_with_the_votes(
    make_live_study, make_rater, clock, django_assert_max_num_queries
):
    study = make_live_study(systems=SYSTEMS, items=20, votes_per_pair=3)
    raters = [make_rater() for _ in range(8)]
    crowd_votes(study, raters, clock, rounds=1, seed=12)
    signals_refresh(now=clock.later())

    few = _incremental_queries(study, raters[:2], clock, rounds=1, seed=13)
    many = _incremental_queries(study, raters, clock, rounds=6, seed=14)
    assert many == few
    crowd_votes(study, raters, clock, rounds=3, seed=15)
    with django_assert_max_num_queries(few):
        signals_refresh(now=clock.later())


def test_models_run_on_incremental_refreshes_of_small_studies_only(study, raters, clock, monkeypatch):
    crowd_votes(study, raters, clock, rounds=3, seed=16)
    monkeypatch.setattr(refresh, "MODELS_INCREMENTAL_MAX_VOTES", 5)
    assert signals_refresh(now=clock.later()).models_run == 0
    assert signals_refresh(full=True, now=clock.later()).models_run == 1


def test_the_celery_task_refreshes_then_runs_the_rules(study, raters, clock, monkeypatch):
    from crowdplatform.quality import rules, tasks

    crowd_votes(study, raters, clock, rounds=2, seed=17)
    seen: list[dict[int, set[int]] | None] = []
    monkeypatch.setattr(rules, "rules_evaluate", lambda *, changed=None, now=None: seen.append(changed) or [])

    first = tasks.quality_refresh.delay().get()
    second = tasks.quality_refresh.delay().get()
    assert first["full"] is True  # the first refresh in a while is a full one
    assert second["full"] is False
    assert seen[0] == {study.pk: {rater.pk for rater in raters}}
    assert first["raters_changed"] == len(raters)
    assert second["rows_written"] == 0
