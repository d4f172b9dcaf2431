"""The quality rules: each fires at its threshold and not below, acts or proposes as configured,
and never raises the same finding twice. Signals are written directly (the refresh is tested apart)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from crowdplatform.quality import services
from crowdplatform.quality.models import (
    ActionStatus,
    QualityAction,
    RaterSignal,
    RaterStudyPause,
    StudySignal,
)
from crowdplatform.quality.rules import rules_evaluate, rules_for, wilson_interval
from crowdplatform.raters.models import RaterProfile
from evaluations.models import Study
from tests.evaluations import conftest as evaluations_fixtures

pytestmark = pytest.mark.django_db

make_rater = evaluations_fixtures.make_rater
make_study = evaluations_fixtures.make_study


def signal_for(rater: RaterProfile, study: Study, **values: Any) -> RaterSignal:
    """A rater's signal on a study, as a refresh would leave it."""
    signal, _ = RaterSignal.objects.update_or_create(
        rater=rater, study=study, defaults={"refreshed_at": timezone.now(), **values}
    )
    return signal


def open_actions(**filters: Any) -> list[tuple[str, str, str]]:
    return sorted(
        QualityAction.objects.filter(**filters)
        .exclude(status__in=[ActionStatus.DISMISSED, ActionStatus.REVERSED])
        .values_list("rule", "kind", "status")
    )


@pytest.fixture
def study(make_study) -> Study:
    return make_study(name="Coding help")


@pytest.fixture
def rater(make_rater) -> RaterProfile:
    return make_rater()


# --- Configuration --------------------------------------------------------------------------------


def test_a_study_overrides_the_platform_defaults_key_by_key(study):
    study.quality_rules = {"gold_accuracy": {"below": 0.7}, "unknown_rule": {"x": 1}, "too_fast": "nonsense"}
    rules = rules_for(study)
    assert rules["gold_accuracy"] == {"min_gold": 10, "below": 0.7, "actions": ["pause", "hold_pay"], "mode": "auto"}
    assert rules["too_fast"]["min_fast"] == 3
    assert "unknown_rule" not in rules


def test_the_defaults_are_not_changed_by_a_study(settings, study):
    study.quality_rules = {"gold_accuracy": {"actions": ["warn"]}}
    rules_for(study)["gold_accuracy"]["actions"].append("suspend")
    assert settings.QUALITY_RULES_DEFAULT["gold_accuracy"]["actions"] == ["pause", "hold_pay"]


def test_the_wilson_interval_matches_the_formula():
    low, high = wilson_interval(5, 10)
    assert (round(low, 4), round(high, 4)) == (0.2366, 0.7634)
    assert wilson_interval(0, 0) == (0.0, 1.0)


# --- Gold accuracy --------------------------------------------------------------------------------


def test_gold_accuracy_below_the_threshold_pauses_and_holds_at_once(study, rater):
    signal_for(rater, study, votes=40, gold_votes=12, gold_correct=4, gold_wilson_low=0.138, gold_wilson_high=0.609)
    made = rules_evaluate()
    assert [(a.kind, a.status, a.rule) for a in made] == [
        ("pause", "applied", "gold_accuracy"),
        ("hold_pay", "applied", "gold_accuracy"),
    ]
    assert made[0].reason == (
        "On study “Coding help” you answered 4 of 12 gold questions correctly (33%; 95% interval 14–61%). "
        "Gold questions have a known right answer. The threshold is 60% after 10 gold questions. "
        "You are paused on this study until staff review it; your other studies are not affected. "
        "Your pending pay on this study is held for review (held, not rejected). "
        "If you think this is wrong, you can appeal on your quality page."
    )
    assert made[0].evidence == {
        "gold_votes": 12,
        "gold_correct": 4,
        "accuracy": pytest.approx(1 / 3),
        "wilson_low": 0.138,
        "wilson_high": 0.609,
        "min_gold": 10,
        "below": 0.6,
        "mode": "auto",
    }
    assert made[0].created_by is None
    assert RaterStudyPause.objects.get(rater=rater, study=study, lifted_at__isnull=True).action == made[0]


@pytest.mark.parametrize(
    ("gold_votes", "gold_correct", "fires"),
    [(10, 5, True), (10, 6, False), (9, 0, False), (100, 59, True), (100, 60, False)],
)
def test_gold_accuracy_fires_at_its_threshold_and_not_below(study, rater, gold_votes, gold_correct, fires):
    signal_for(rater, study, votes=gold_votes, gold_votes=gold_votes, gold_correct=gold_correct)
    assert bool(rules_evaluate()) is fires


def test_a_study_can_ask_for_more_gold_before_acting(study, rater):
    study.quality_rules = {"gold_accuracy": {"min_gold": 20}}
    study.save()
    signal_for(rater, study, gold_votes=19, gold_correct=0)
    assert rules_evaluate() == []
    signal_for(rater, study, gold_votes=20, gold_correct=0)
    assert [a.kind for a in rules_evaluate()] == ["pause", "hold_pay"]


# --- Too fast -------------------------------------------------------------------------------------


def fast(rater: RaterProfile, study: Study, count: int) -> RaterSignal:
    StudySignal.objects.update_or_create(study=study, defaults={"speed_typical_seconds": 45.0, "speed_log_sd": 11.0})
    return signal_for(rater, study, votes=20, fast_votes=count, fast_threshold_seconds=12.0)


def test_too_fast_warns_at_its_threshold_and_not_below(study, rater):
    fast(rater, study, 2)
    assert rules_evaluate() == []
    fast(rater, study, 3)
    [warning] = rules_evaluate()
    assert (warning.kind, warning.status) == ("warn", "applied")
    assert warning.reason == (
        "On study “Coding help”, 3 of your 20 votes took under 12 s. That is more than 3 standard deviations below "
        "the study's typical time per vote (45 s; measured on a log scale, as task times are skewed): too fast to "
        "have read both responses. "
        "Please take the time each comparison needs: further votes this fast will be left out of the results. "
        "This is a warning: nothing else changes for now. If you think this is wrong, you can appeal on your "
        "quality page."
    )
    assert warning.evidence["fast_votes_total"] == 3
    assert warning.evidence["faster_than_ms"] == 12_000


def test_too_fast_excludes_on_a_repeat_after_the_warning(study, rater):
    fast(rater, study, 3)
    rules_evaluate()
    assert rules_evaluate() == []  # the same evidence: nothing new
    fast(rater, study, 5)
    [exclusion] = rules_evaluate()
    assert (exclusion.kind, exclusion.status, exclusion.evidence["stage"]) == ("exclude_votes", "applied", "repeat")
    assert exclusion.evidence["fast_votes"] == 2
    assert exclusion.reason.startswith(
        f"After the warning of {timezone.now():%Y-%m-%d}, 2 more of your votes on study “Coding help” took under 12 s."
    )
    assert "These votes are left out of the study's results." in exclusion.reason
    assert rules_evaluate() == []
    fast(rater, study, 6)
    assert [a.kind for a in rules_evaluate()] == ["exclude_votes"]


# --- Proposals ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "fires"),
    [
        ({"a_choices": 28, "b_choices": 2, "position_p_value": 8.7e-7}, True),
        ({"a_choices": 27, "b_choices": 2, "position_p_value": 1e-6}, False),  # 29 votes: too few
        ({"a_choices": 28, "b_choices": 2, "position_p_value": 0.001}, False),  # not below p
    ],
)
def test_position_bias_proposes_a_warning_at_its_threshold(study, rater, values, fires):
    signal_for(rater, study, votes=30, **values)
    made = rules_evaluate()
    assert [(a.rule, a.kind, a.status) for a in made] == ([("position_bias", "warn", "proposed")] if fires else [])
    if fires:
        assert made[0].reason.startswith(
            "On study “Coding help” you chose the response shown on the left (A) in 28 of the 30 votes where you "
            "preferred one side (93%). Sides are assigned at random, so a careful rater picks each side about half "
            "the time; a split this uneven happens by chance less than 0.1% of the time (p = 8.7e-07)."
        )
        assert RaterStudyPause.objects.count() == 0


@pytest.mark.parametrize(("run", "fires"), [(15, True), (14, False)])
def test_straight_lining_proposes_at_its_threshold(study, rater, run, fires):
    signal_for(rater, study, votes=40, longest_run=run, longest_run_choice="b")
    made = rules_evaluate()
    assert [(a.rule, a.status) for a in made] == ([("straight_lining", "proposed")] if fires else [])
    if fires:
        assert "the same answer (“B is better”) 15 times in a row" in made[0].reason


@pytest.mark.parametrize(
    ("agreement_votes", "agreement", "fires"), [(30, 0.29, True), (30, 0.3, False), (29, 0.1, False)]
)
def test_low_agreement_proposes_at_its_threshold(study, rater, agreement_votes, agreement, fires):
    signal_for(rater, study, votes=40, agreement_votes=agreement_votes, agreement=agreement)
    made = rules_evaluate()
    assert [(a.rule, a.status) for a in made] == ([("low_agreement", "proposed")] if fires else [])


def test_a_study_can_make_a_proposing_rule_act_at_once(study, rater):
    study.quality_rules = {"position_bias": {"mode": "auto"}}
    study.save()
    signal_for(rater, study, votes=30, a_choices=30, b_choices=0, position_p_value=1.9e-9)
    assert [(a.kind, a.status) for a in rules_evaluate()] == [("warn", "applied")]


def test_a_disabled_rule_never_fires(study, rater):
    study.quality_rules = {"gold_accuracy": {"enabled": False}}
    study.save()
    signal_for(rater, study, gold_votes=20, gold_correct=0)
    assert rules_evaluate() == []


def test_a_suspension_is_never_automatic(study, rater):
    study.quality_rules = {"gold_accuracy": {"actions": ["suspend"], "mode": "auto"}}
    study.save()
    signal_for(rater, study, gold_votes=20, gold_correct=0)
    assert [(a.kind, a.status) for a in rules_evaluate()] == [("suspend", "proposed")]
    rater.refresh_from_db()
    assert rater.status == "approved"


# --- Idempotency and staff decisions --------------------------------------------------------------


def test_rules_never_raise_the_same_finding_twice(study, rater):
    signal_for(rater, study, gold_votes=12, gold_correct=4, longest_run=20, longest_run_choice="a")
    first = rules_evaluate()
    assert sorted((a.rule, a.kind) for a in first) == [
        ("gold_accuracy", "hold_pay"),
        ("gold_accuracy", "pause"),
        ("straight_lining", "warn"),
    ]
    signal_for(rater, study, gold_votes=30, gold_correct=5, longest_run=25, longest_run_choice="a")
    assert rules_evaluate() == []
    assert QualityAction.objects.count() == 3


def test_only_the_changed_signals_are_checked(study, make_study, rater, make_rater):
    other_rater, other_study = make_rater(), make_study(name="Other")
    for who in (rater, other_rater):
        for where in (study, other_study):
            signal_for(who, where, longest_run=20)
    made = rules_evaluate(changed={study.pk: {rater.pk}, other_study.pk: set()})
    assert [(a.rater_id, a.study_id) for a in made] == [(rater.pk, study.pk)]


def test_a_dismissed_proposal_is_not_raised_again_on_the_same_evidence(study, rater, staff_user):
    signal_for(rater, study, votes=40, longest_run=20, longest_run_choice="a")
    [proposal] = rules_evaluate()
    services.action_dismiss(action=proposal, actor=staff_user, note="Runs of A are right on this study.")
    assert rules_evaluate() == []
    signal_for(rater, study, votes=54, longest_run=22)  # 14 new votes: fewer than the run length
    assert rules_evaluate() == []
    signal_for(rater, study, votes=55, longest_run=22)
    assert [(a.rule, a.status) for a in rules_evaluate()] == [("straight_lining", "proposed")]


def test_after_a_clear_gold_is_judged_on_the_new_gold_answers_only(study, rater, staff_user):
    signal_for(rater, study, votes=40, gold_votes=12, gold_correct=4)
    rules_evaluate()
    services.staff_action(
        rater=rater, study=study, kind="clear", reason="The gold items were ambiguous.", actor=staff_user
    )
    assert open_actions(kind__in=["pause", "hold_pay"], rule="gold_accuracy") == [
        ("gold_accuracy", "hold_pay", "applied"),
        ("gold_accuracy", "pause", "applied"),
    ]  # history stays; the clear stands after them
    assert rules_evaluate() == []
    signal_for(rater, study, gold_votes=21, gold_correct=12)  # since the clear: 8 of 9
    assert rules_evaluate() == []
    signal_for(rater, study, gold_votes=22, gold_correct=12)  # since the clear: 8 of 10, 80%
    assert rules_evaluate() == []
    signal_for(rater, study, gold_votes=32, gold_correct=14)  # since the clear: 10 of 20, 50%
    made = rules_evaluate()
    assert [a.kind for a in made] == ["pause", "hold_pay"]
    assert "you answered 10 of 20 gold questions correctly since staff last reviewed your work (50%" in made[0].reason
    assert made[0].evidence["gold_votes"] == 20


def test_a_reversed_action_is_not_raised_again_on_the_same_evidence(study, rater, staff_user):
    signal_for(rater, study, votes=30, fast_votes=3, fast_threshold_seconds=5.0)
    [warning] = rules_evaluate()
    appeal = services.quality_appeal_create(action=warning, rater=rater, message="I type fast and read fast.")
    services.quality_appeal_decide(appeal=appeal, actor=staff_user, uphold=True, response="Fair: we looked again.")
    assert rules_evaluate() == []
    signal_for(rater, study, votes=40, fast_votes=6, fast_threshold_seconds=5.0)
    assert [(a.kind, a.evidence["fast_votes"]) for a in rules_evaluate()] == [("warn", 3)]


def test_a_rater_wide_clear_covers_every_study(study, make_study, rater, staff_user):
    other = make_study(name="Other")
    signal_for(rater, study, votes=40, longest_run=20)
    signal_for(rater, other, votes=40, longest_run=20)
    assert len(rules_evaluate()) == 2
    clear = services.staff_action(rater=rater, study=None, kind="clear", reason="Reviewed, all fine.", actor=staff_user)
    assert clear.detail["proposals_dismissed"] == 2
    assert rules_evaluate(now=timezone.now() + timedelta(minutes=1)) == []


def test_a_rule_never_rejects_pay_on_its_own(study, rater):
    study.quality_rules = {"gold_accuracy": {"actions": ["reject_pay", "clear", "warn"]}}
    study.save()
    signal_for(rater, study, gold_votes=20, gold_correct=0)
    assert [a.kind for a in rules_evaluate()] == ["warn"]
