"""Simulated crowds of known behaviour (tests/quality/crowds.py): after a refresh and the rules,
the bad raters are caught and the honest ones — the careless-but-honest majority and the expert
who disagrees with it on the trap pairs included — are not."""

from __future__ import annotations

import pytest

from crowdplatform.quality.models import ActionStatus, QualityAction, RaterSignal
from crowdplatform.quality.refresh import signals_refresh
from crowdplatform.quality.rules import rules_evaluate
from tests.evaluations import conftest as evaluations_fixtures
from tests.quality.crowds import (
    ACCURATE,
    ALWAYS_A,
    BAD,
    CARELESS,
    EXPERT,
    RANDOM,
    TOO_FAST,
    SimulatedRater,
    crowd_run,
    study_with_items,
)

pytestmark = pytest.mark.django_db

make_rater = evaluations_fixtures.make_rater

BEHAVIOURS = [ACCURATE] * 3 + [CARELESS] * 6 + [EXPERT] + [RANDOM] * 2 + [ALWAYS_A] * 2 + [TOO_FAST] * 2


@pytest.fixture
def crowd(organization, owner, make_rater):
    study, traps = study_with_items(organization=organization, owner=owner, items=60, gold=25, seed=7)
    raters = [SimulatedRater(make_rater(), behaviour) for behaviour in BEHAVIOURS]
    crowd_run(study=study, traps=traps, raters=raters, votes_each=60, seed=11)
    signals_refresh(full=True)
    rules_evaluate()
    return study, raters


def flagged_raters() -> dict[int, set[str]]:
    rules: dict[int, set[str]] = {}
    for action in QualityAction.objects.filter(status__in=[ActionStatus.PROPOSED, ActionStatus.APPLIED]):
        rules.setdefault(action.rater_id, set()).add(action.rule)
    return rules


def test_the_bad_raters_are_caught_and_the_honest_ones_are_not(crowd):
    _study, raters = crowd
    flagged = flagged_raters()
    caught = {r.behaviour for r in raters if r.profile.pk in flagged}
    wrongly = [
        (r.behaviour, sorted(flagged[r.profile.pk]))
        for r in raters
        if r.behaviour not in BAD and r.profile.pk in flagged
    ]
    missed = [r.behaviour for r in raters if r.behaviour in BAD and r.profile.pk not in flagged]
    assert wrongly == []
    assert missed == []
    assert caught == set(BAD)


def test_each_bad_behaviour_is_caught_by_the_rule_that_describes_it(crowd):
    _, raters = crowd
    flagged = flagged_raters()
    for rater in raters:
        if rater.behaviour == ALWAYS_A:
            assert "position_bias" in flagged[rater.profile.pk]
        if rater.behaviour == TOO_FAST:
            assert "too_fast" in flagged[rater.profile.pk]
        if rater.behaviour == RANDOM:
            assert "gold_accuracy" in flagged[rater.profile.pk]


def test_the_expert_disagrees_with_the_careless_majority_yet_keeps_good_standing(crowd):
    study, raters = crowd
    expert = next(r for r in raters if r.behaviour == EXPERT)
    signal = RaterSignal.objects.get(rater=expert.profile, study=study)
    assert signal.gold_accuracy == 1.0
    assert signal.agreement is not None
    assert signal.agreement < 1.0
    assert expert.profile.pk not in flagged_raters()
