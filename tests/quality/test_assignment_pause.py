"""A rater paused on a study gets no new task there, still gets tasks elsewhere, may finish the
lease they hold, and works again once the pause is lifted."""

from __future__ import annotations

import pytest

from crowdplatform.quality import services
from crowdplatform.quality.rules import rules_evaluate
from evaluations.assignment import VoteInput, task_next, vote_submit
from tests.evaluations import conftest as evaluations_fixtures
from tests.quality.test_rules import signal_for

pytestmark = pytest.mark.django_db

add_systems = evaluations_fixtures.add_systems
make_live_study = evaluations_fixtures.make_live_study
make_rater = evaluations_fixtures.make_rater
make_study = evaluations_fixtures.make_study
upload = evaluations_fixtures.upload


def test_the_gold_rule_pauses_the_rater_on_that_study_only(make_live_study, make_rater, staff_user):
    paused_on, elsewhere = make_live_study(name="Coding help"), make_live_study(name="Legal advice")
    rater = make_rater()
    signal_for(rater, paused_on, gold_votes=10, gold_correct=3)
    rules_evaluate()
    assert task_next(rater=rater, study=paused_on) is None
    task = task_next(rater=rater)
    assert task is not None
    assert task.study_id == elsewhere.pk
    vote_submit(task_id=task.pk, rater=rater, data=VoteInput(choice="a"))
    assert task_next(rater=rater, study=paused_on) is None
    # Someone else is not affected.
    assert task_next(rater=make_rater(), study=paused_on).study_id == paused_on.pk
    services.staff_action(rater=rater, study=paused_on, kind="clear", reason="Gold items were wrong.", actor=staff_user)
    assert task_next(rater=rater, study=paused_on).study_id == paused_on.pk


def test_a_lease_held_when_paused_may_still_be_voted_on(make_live_study, make_rater, staff_user):
    study = make_live_study()
    rater = make_rater()
    task = task_next(rater=rater, study=study)
    services.staff_action(rater=rater, study=study, kind="pause", reason="Careless answers here.", actor=staff_user)
    assert task_next(rater=rater, study=study) == task  # their open lease, not a new task
    vote, created = vote_submit(task_id=task.pk, rater=rater, data=VoteInput(choice="b"))
    assert created
    assert vote.quality_status == "included"
    assert task_next(rater=rater, study=study) is None
