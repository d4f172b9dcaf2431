"""Quality actions on real votes and pay: what each kind does, what a clear and an upheld appeal
undo, staff's direct actions, and that refused input changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from crowdplatform.core.errors import ApplicationError, ConflictError
from crowdplatform.core.models import AuditEvent
from crowdplatform.quality import services
from crowdplatform.quality.models import (
    ActionStatus,
    AppealStatus,
    QualityAction,
    QualityAppeal,
    RaterStudyPause,
)
from crowdplatform.quality.rules import rules_evaluate
from crowdplatform.raters.models import RaterProfile
from evaluations.models import Study, Vote
from payments.models import Earning
from tests.evaluations import conftest as evaluations_fixtures
from tests.payments import conftest as payments_fixtures
from tests.payments.conftest import money_state
from tests.quality.test_rules import signal_for

pytestmark = pytest.mark.django_db

add_systems = evaluations_fixtures.add_systems
make_live_study = evaluations_fixtures.make_live_study
make_rater = evaluations_fixtures.make_rater
make_study = evaluations_fixtures.make_study
upload = evaluations_fixtures.upload
vote_as = payments_fixtures.vote_as


def quality_state() -> dict[str, Any]:
    """Everything a refused call must leave as it was."""
    return {
        "actions": list(QualityAction.objects.order_by("pk").values_list("pk", "kind", "status")),
        "pauses": list(RaterStudyPause.objects.order_by("pk").values_list("pk", "lifted_at")),
        "appeals": list(QualityAppeal.objects.order_by("pk").values_list("pk", "status")),
        "votes": list(Vote.objects.order_by("pk").values_list("pk", "quality_status", "quality_reason")),
        "raters": list(RaterProfile.objects.order_by("pk").values_list("pk", "status")),
        "audit": AuditEvent.objects.count(),
        "money": money_state(),
    }


def statuses(rater: RaterProfile, study: Study | None = None) -> list[str]:
    earnings = Earning.objects.filter(rater=rater.user)
    if study is not None:
        earnings = earnings.filter(study=study)
    return list(earnings.order_by("pk").values_list("status", flat=True))


@pytest.fixture
def study(make_live_study) -> Study:
    return make_live_study(name="Coding help", items=6)


@pytest.fixture
def other_study(make_live_study) -> Study:
    return make_live_study(name="Legal advice", items=6)


@pytest.fixture
def worker(make_rater, vote_as, study, other_study) -> RaterProfile:
    """A rater with three votes on `study` (10, 30, 50 s) and one on `other_study`."""
    rater = make_rater()
    for seconds in (10, 30, 50):
        vote_as(study, rater, duration_s=seconds)
    vote_as(other_study, rater, duration_s=40)
    return rater


# --- Rules acting on real pay ----------------------------------------------------------------------


def test_the_gold_rule_holds_the_pending_pay_on_that_study_only(study, other_study, worker):
    signal_for(worker, study, votes=3, gold_votes=10, gold_correct=2)
    pause, hold = rules_evaluate()
    assert statuses(worker, study) == ["held", "held", "held"]
    assert statuses(worker, other_study) == ["pending"]
    assert set(Earning.objects.filter(study=study).values_list("hold_reason", flat=True)) == {hold.reason}
    assert hold.detail == {"earnings_held": 3}
    assert pause.detail == {"pause": RaterStudyPause.objects.get().pk}
    assert list(AuditEvent.objects.filter(action="quality.action_applied").values_list("actor_label", flat=True)) == [
        "system",
        "system",
    ]


def test_the_speed_rule_excludes_only_the_votes_that_were_too_fast(study, worker):
    signal_for(worker, study, votes=3, fast_votes=3, fast_threshold_seconds=31.0)
    rules_evaluate()  # the warning
    signal_for(worker, study, votes=3, fast_votes=4, fast_threshold_seconds=31.0)
    [exclusion] = rules_evaluate()
    excluded = Vote.objects.filter(rater=worker, quality_status="excluded")
    assert sorted(excluded.values_list("duration_ms", flat=True)) == [10_000, 30_000]
    assert set(excluded.values_list("quality_reason", flat=True)) == {
        "Exceptionally fast (more than 3 SD below the study's typical time)"
    }
    assert exclusion.detail == {"votes_excluded": 2, "vote_ids": sorted(excluded.values_list("pk", flat=True))}
    # Excluding leaves the counters alone: ratings and exports filter on quality_status.
    assert Study.objects.get(pk=study.pk).votes_count == 3


# --- Staff act on proposals ------------------------------------------------------------------------


def test_staff_apply_a_proposal_and_it_takes_effect(study, worker, staff_user):
    study.quality_rules = {"straight_lining": {"actions": ["exclude_votes"]}}
    study.save()
    signal_for(worker, study, votes=3, longest_run=20)
    [proposal] = rules_evaluate()
    assert Vote.objects.filter(quality_status="excluded").count() == 0
    applied = services.action_apply(action=proposal, actor=staff_user)
    assert (applied.status, applied.decided_by, applied.detail["votes_excluded"]) == ("applied", staff_user, 3)
    assert Vote.objects.filter(rater=worker, study=study, quality_status="excluded").count() == 3
    before = quality_state()
    with pytest.raises(ConflictError):
        services.action_apply(action=proposal, actor=staff_user)
    with pytest.raises(ConflictError):
        services.action_dismiss(action=proposal, actor=staff_user, note="Too late to dismiss it now.")
    assert quality_state() == before


def test_dismissing_needs_a_note_and_changes_nothing_else(study, worker, staff_user):
    signal_for(worker, study, votes=3, longest_run=20)
    [proposal] = rules_evaluate()
    before = quality_state()
    with pytest.raises(ApplicationError):
        services.action_dismiss(action=proposal, actor=staff_user, note="no")
    assert quality_state() == before
    dismissed = services.action_dismiss(action=proposal, actor=staff_user, note="The run is the right answer.")
    assert dismissed.status == "dismissed"
    assert dismissed.detail["dismissal"]["note"] == "The run is the right answer."
    assert AuditEvent.objects.filter(action="quality.action_dismissed", target_id=str(proposal.pk)).count() == 1


# --- Staff direct actions ----------------------------------------------------------------------------


def test_staff_reject_pay_for_exactly_the_named_tasks(client, study, worker, staff_user):
    votes = list(Vote.objects.filter(rater=worker, study=study).order_by("pk"))
    named = [str(votes[0].task_id), str(votes[2].task_id)]
    reason = "These two answers copy the left response word for word."
    action = services.staff_action(
        rater=worker, study=study, kind="reject_pay", reason=reason, actor=staff_user, task_ids=named
    )
    earnings = {e.vote_id: e for e in Earning.objects.filter(rater=worker.user, study=study)}
    assert [earnings[v.pk].status for v in votes] == ["rejected", "pending", "rejected"]
    assert earnings[votes[0].pk].rejection_reason == reason
    assert action.evidence["task_ids"] == sorted(named)
    assert action.detail == {
        "earnings_rejected": sorted([earnings[votes[0].pk].pk, earnings[votes[2].pk].pk]),
        "amount_cents": 2 * study.pay_per_task_cents,
    }
    client.force_login(worker.user)
    page = client.get("/rater/earnings/").content.decode()
    assert page.count(reason) == 2


@pytest.mark.parametrize(
    ("task_ids", "reason", "error"),
    [
        (["other"], "A good long reason for this.", ApplicationError),  # another rater's task
        (["not-a-uuid"], "A good long reason for this.", ApplicationError),
        ([], "A good long reason for this.", ApplicationError),
        (["mine"], "short", ApplicationError),
        (["mine", "other"], "A good long reason for this.", ApplicationError),
    ],
)
def test_refused_pay_rejections_change_nothing(study, worker, make_rater, vote_as, staff_user, task_ids, reason, error):
    other = vote_as(study, make_rater())
    mine = Vote.objects.filter(rater=worker, study=study).first()
    ids = [{"other": str(other.task_id), "mine": str(mine.task_id)}.get(name, name) for name in task_ids]
    before = quality_state()
    with pytest.raises(error):
        services.staff_action(
            rater=worker, study=study, kind="reject_pay", reason=reason, actor=staff_user, task_ids=ids
        )
    assert quality_state() == before


def test_already_rejected_pay_cannot_be_rejected_again(study, worker, staff_user):
    task_id = str(Vote.objects.filter(rater=worker, study=study).first().task_id)
    services.staff_action(
        rater=worker,
        study=study,
        kind="reject_pay",
        reason="Copied text, see task.",
        actor=staff_user,
        task_ids=[task_id],
    )
    before = quality_state()
    with pytest.raises(ConflictError):
        services.staff_action(
            rater=worker,
            study=study,
            kind="reject_pay",
            reason="Copied text again.",
            actor=staff_user,
            task_ids=[task_id],
        )
    assert quality_state() == before


def test_staff_exclude_all_the_raters_votes_on_one_study(study, other_study, worker, staff_user):
    action = services.staff_action(
        rater=worker, study=study, kind="exclude_votes", reason="Answers unrelated to the prompts.", actor=staff_user
    )
    assert action.detail["votes_excluded"] == 3
    assert set(Vote.objects.filter(rater=worker, study=study).values_list("quality_status", "quality_reason")) == {
        ("excluded", "Excluded by staff after quality review")
    }
    assert Vote.objects.get(rater=worker, study=other_study).quality_status == "included"


def test_staff_suspend_a_rater_with_the_reason_they_see(worker, staff_user):
    reason = "Repeated copy-paste answers across studies."
    services.staff_action(rater=worker, study=None, kind="suspend", reason=reason, actor=staff_user)
    worker.refresh_from_db()
    assert (worker.status, worker.status_reason) == ("suspended", reason)


@pytest.mark.parametrize(
    ("kind", "study_needed"), [("pause", True), ("exclude_votes", True), ("warn", False), ("nonsense", False)]
)
def test_refused_staff_actions_change_nothing(worker, staff_user, kind, study_needed):
    before = quality_state()
    with pytest.raises(ApplicationError):
        services.staff_action(
            rater=worker,
            study=None,
            kind=kind,
            reason="Short" if not study_needed else "A long enough reason.",
            actor=staff_user,
        )
    assert quality_state() == before


def test_suspending_a_rater_who_is_not_approved_is_refused(make_rater, staff_user):
    applicant = make_rater(status="applied")
    before = quality_state()
    with pytest.raises(ConflictError):
        services.staff_action(
            rater=applicant, study=None, kind="suspend", reason="A long enough reason.", actor=staff_user
        )
    assert quality_state() == before


# --- Clear ---------------------------------------------------------------------------------------------


def test_clear_undoes_the_quality_measures_on_the_study(study, other_study, worker, staff_user):
    signal_for(worker, study, votes=3, gold_votes=10, gold_correct=2, longest_run=20)
    rules_evaluate()  # pause + hold (auto), straight-lining (proposed)
    services.staff_action(
        rater=worker, study=study, kind="exclude_votes", reason="Checking these votes.", actor=staff_user
    )
    services.staff_action(
        rater=worker, study=other_study, kind="pause", reason="Paused elsewhere too.", actor=staff_user
    )
    clear = services.staff_action(
        rater=worker, study=study, kind="clear", reason="The gold items were ambiguous; all fine.", actor=staff_user
    )
    assert {k: v for k, v in clear.detail.items() if k != "baseline"} == {
        "pauses_lifted": 1,
        "earnings_released": 3,
        "votes_included": 3,
        "proposals_dismissed": 1,
    }
    assert clear.detail["baseline"][str(study.pk)]["gold_votes"] == 10
    assert statuses(worker, study) == ["pending", "pending", "pending"]
    assert set(Vote.objects.filter(rater=worker).values_list("quality_status", flat=True)) == {"included"}
    assert list(RaterStudyPause.objects.filter(lifted_at__isnull=True).values_list("study_id", flat=True)) == [
        other_study.pk
    ]
    assert QualityAction.objects.get(rule="straight_lining").status == "dismissed"


# --- Appeals -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["warn", "pause", "hold_pay", "exclude_votes", "suspend"])
def test_an_upheld_appeal_reverses_each_kind(study, worker, staff_user, kind):
    action = services.staff_action(
        rater=worker, study=study, kind=kind, reason="Staff think these votes are careless.", actor=staff_user
    )
    appeal = services.quality_appeal_create(action=action, rater=worker, message="I read every pair carefully.")
    decided = services.quality_appeal_decide(
        appeal=appeal, actor=staff_user, uphold=True, response="You are right; we reversed it."
    )
    action.refresh_from_db()
    worker.refresh_from_db()
    assert (decided.status, decided.response, action.status) == ("upheld", "You are right; we reversed it.", "reversed")
    assert RaterStudyPause.objects.filter(lifted_at__isnull=True).count() == 0
    assert statuses(worker, study) == ["pending", "pending", "pending"]
    assert set(Vote.objects.filter(rater=worker).values_list("quality_status", flat=True)) == {"included"}
    assert worker.status == "approved"
    undone = {k: v for k, v in action.detail["reversal"].items() if k not in ("at", "baseline", "appeal")}
    assert (
        undone
        == {
            "warn": {},
            "pause": {"pauses_lifted": 1},
            "hold_pay": {"earnings_released": 3},
            "exclude_votes": {"votes_included": 3},
            "suspend": {"reinstated": True},
        }[kind]
    )
    assert AuditEvent.objects.filter(action="quality.appeal_upheld").count() == 1
    assert AuditEvent.objects.filter(action="quality.action_reversed", target_id=str(action.pk)).count() == 1


def test_a_denied_appeal_leaves_the_action_in_force(study, worker, staff_user):
    action = services.staff_action(
        rater=worker, study=study, kind="pause", reason="Careless votes here.", actor=staff_user
    )
    appeal = services.quality_appeal_create(action=action, rater=worker, message="Please look again.")
    services.quality_appeal_decide(appeal=appeal, actor=staff_user, uphold=False, response="We looked: it stands.")
    action.refresh_from_db()
    assert action.status == "applied"
    assert RaterStudyPause.objects.filter(lifted_at__isnull=True).count() == 1
    before = quality_state()
    with pytest.raises(ConflictError):  # decided once
        services.quality_appeal_create(action=action, rater=worker, message="Again, please.")
    with pytest.raises(ConflictError):
        services.quality_appeal_decide(appeal=appeal, actor=staff_user, uphold=True, response="Changed my mind.")
    assert quality_state() == before


def test_refused_appeals_change_nothing(study, worker, make_rater, staff_user):
    action = services.staff_action(
        rater=worker, study=study, kind="warn", reason="Careless votes here.", actor=staff_user
    )
    task_id = str(Vote.objects.filter(rater=worker, study=study).first().task_id)
    rejection = services.staff_action(
        rater=worker,
        study=study,
        kind="reject_pay",
        reason="Copied text, see task.",
        actor=staff_user,
        task_ids=[task_id],
    )
    services.quality_appeal_create(action=action, rater=worker, message="First appeal.")
    stranger = make_rater()
    before = quality_state()
    with pytest.raises(ConflictError):  # one open appeal per action
        services.quality_appeal_create(action=action, rater=worker, message="Second appeal.")
    with pytest.raises(ApplicationError):  # someone else's action
        services.quality_appeal_create(action=action, rater=stranger, message="Not mine.")
    with pytest.raises(ConflictError) as error:  # rejected pay is appealed on the earnings page
        services.quality_appeal_create(action=rejection, rater=worker, message="My pay.")
    assert error.value.code == "appeal_on_earnings"
    with pytest.raises(ApplicationError):
        services.quality_appeal_create(action=rejection, rater=worker, message="   ")
    assert quality_state() == before


def test_a_proposal_cannot_be_appealed(study, worker):
    signal_for(worker, study, votes=3, longest_run=20)
    [proposal] = rules_evaluate()
    with pytest.raises(ConflictError):
        services.quality_appeal_create(action=proposal, rater=worker, message="Nothing happened yet.")
    assert QualityAppeal.objects.count() == 0
    assert proposal.status == ActionStatus.PROPOSED
    assert AppealStatus.OPEN == "open"
