"""What raters earn: task pay, the review window, holds, rejections and appeals, bonuses."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from crowdplatform.core.errors import ApplicationError, ConflictError
from crowdplatform.core.models import AuditEvent
from evaluations.assignment import VoteInput, task_next, vote_submit
from payments import earnings, ledger
from payments.models import AppealStatus, Earning, EarningKind, EarningStatus, LedgerTransaction
from tests.factories import UserFactory
from tests.payments.conftest import money_state

pytestmark = pytest.mark.django_db

PAY, FEE = 25, 5  # the default study: 25 cents a task, platform fee 20% (2000 bps)
FUNDS = 100_000


def balances(study, rater_user_id: int) -> dict[str, int]:
    org = study.organization_id
    return {
        "funds": ledger.balance(ledger.org_funds(org, "usd")),
        "revenue": ledger.balance(ledger.platform_revenue(org, "usd")),
        "pending": ledger.balance(ledger.rater_pending(rater_user_id, "usd")),
        "available": ledger.balance(ledger.rater_available(rater_user_id, "usd")),
    }


@pytest.fixture
def study(make_live_study):
    return make_live_study(items=6, funds_cents=FUNDS)


# --- Task pay -------------------------------------------------------------------------------------


def test_a_vote_pays_the_rater_pending_pay_and_the_platform_fee_from_the_clients_funds(study, vote_as, rater_profile):
    vote = vote_as(study, rater_profile)

    earning = Earning.objects.get()
    assert (earning.kind, earning.status, earning.amount_cents, earning.fee_cents) == ("task", "pending", PAY, FEE)
    assert (earning.vote_id, earning.rater_id, earning.study_id) == (vote.pk, rater_profile.user_id, study.pk)
    assert earning.available_at == vote.created_at + timedelta(hours=72)
    assert earning.posting.reference == f"vote:{vote.pk}:pay"
    assert balances(study, rater_profile.user_id) == {
        "funds": FUNDS - PAY - FEE,
        "revenue": FEE,
        "pending": PAY,
        "available": 0,
    }
    assert ledger.ledger_check().ok


def test_the_same_vote_sent_again_is_paid_once(study, rater_profile):
    task = task_next(rater=rater_profile, study=study)
    vote_submit(task_id=task.pk, rater=rater_profile, data=VoteInput(choice="a"))
    vote_submit(task_id=task.pk, rater=rater_profile, data=VoteInput(choice="a"))

    assert Earning.objects.count() == 1
    assert LedgerTransaction.objects.filter(kind="task_pay").count() == 1
    assert balances(study, rater_profile.user_id)["pending"] == PAY


def test_a_study_without_a_platform_fee_posts_two_lines(make_live_study, vote_as, rater_profile):
    study = make_live_study(funds_cents=FUNDS)
    study.platform_fee_bps = 0
    study.save(update_fields=["platform_fee_bps"])
    vote_as(study, rater_profile)

    assert Earning.objects.get().fee_cents == 0
    assert LedgerTransaction.objects.get(kind="task_pay").entries.count() == 2
    assert balances(study, rater_profile.user_id)["funds"] == FUNDS - PAY


# --- The review window ----------------------------------------------------------------------------


def test_pay_becomes_available_after_the_review_window_in_one_posting_per_rater(study, vote_as, make_rater):
    first, second = make_rater(), make_rater()
    votes = [vote_as(study, first), vote_as(study, first), vote_as(study, second)]
    window_end = max(vote.created_at for vote in votes) + timedelta(hours=72)

    assert earnings.earnings_release_due(now=window_end - timedelta(seconds=1)) == 0
    assert earnings.earnings_release_due(now=window_end) == 3
    assert earnings.earnings_release_due(now=window_end) == 0

    assert set(Earning.objects.values_list("status", flat=True)) == {"available"}
    assert LedgerTransaction.objects.filter(kind="release").count() == 2
    assert balances(study, first.user_id)["pending"] == 0
    assert balances(study, first.user_id)["available"] == 2 * PAY
    assert balances(study, second.user_id)["available"] == PAY
    assert ledger.ledger_check().ok


def test_held_pay_does_not_mature_until_released(study, vote_as, rater_profile, staff_user):
    vote_as(study, rater_profile)
    user = rater_profile.user

    assert earnings.earnings_hold(rater=user, study=study, reason="Gold accuracy under review", actor=staff_user) == 1
    later = timezone.now() + timedelta(days=10)
    assert earnings.earnings_release_due(now=later) == 0
    assert Earning.objects.get().hold_reason == "Gold accuracy under review"

    assert earnings.earnings_hold_release(rater=user, study=study, actor=staff_user, note="Cleared") == 1
    assert earnings.earnings_release_due(now=later) == 1
    assert balances(study, user.pk)["available"] == PAY
    assert list(AuditEvent.objects.filter(action__startswith="earning.hold").values_list("action", flat=True)) == [
        "earning.hold_release",
        "earning.hold",
    ]


def test_a_hold_needs_a_reason(study, vote_as, rater_profile, staff_user):
    vote_as(study, rater_profile)
    before = money_state()
    with pytest.raises(ApplicationError) as error:
        earnings.earnings_hold(rater=rater_profile.user, reason="bad", actor=staff_user)
    assert error.value.code == "reason_required"
    assert money_state() == before


# --- Rejection and appeal -------------------------------------------------------------------------


def test_a_rejection_returns_pay_and_fee_to_the_client_and_the_rater_sees_why(
    study, vote_as, rater_profile, staff_user
):
    vote_as(study, rater_profile)
    earning = Earning.objects.get()

    earnings.earning_reject(earning=earning, reason="Answered before reading: 2 s on a long task", actor=staff_user)

    earning.refresh_from_db()
    assert (earning.status, earning.rejection_reason) == ("rejected", "Answered before reading: 2 s on a long task")
    assert balances(study, rater_profile.user_id) == {"funds": FUNDS, "revenue": 0, "pending": 0, "available": 0}
    assert ledger.ledger_check().ok


@pytest.mark.parametrize("reason", ["", "   ", "too short"])
def test_a_rejection_without_a_real_reason_changes_nothing(study, vote_as, rater_profile, staff_user, reason):
    vote_as(study, rater_profile)
    before = money_state()
    with pytest.raises(ApplicationError) as error:
        earnings.earning_reject(earning=Earning.objects.get(), reason=reason, actor=staff_user)
    assert error.value.code == "reason_required"
    assert money_state() == before


def test_available_pay_cannot_be_rejected(study, vote_as, rater_profile, staff_user):
    vote_as(study, rater_profile)
    earnings.earnings_release_due(now=timezone.now() + timedelta(days=4))
    before = money_state()
    with pytest.raises(ConflictError) as error:
        earnings.earning_reject(earning=Earning.objects.get(), reason="Too late to reject this", actor=staff_user)
    assert error.value.code == "not_rejectable"
    assert money_state() == before


def test_an_upheld_appeal_reinstates_the_pay_at_once(study, vote_as, rater_profile, staff_user):
    vote_as(study, rater_profile)
    earning = Earning.objects.get()
    earnings.earning_reject(earning=earning, reason="Straight-lined answers", actor=staff_user)

    appeal = earnings.earning_appeal(earning=earning, rater=rater_profile.user, message="I read each one carefully.")
    with pytest.raises(ConflictError) as error:
        earnings.earning_appeal(earning=earning, rater=rater_profile.user, message="Again")
    assert error.value.code == "appeal_open"
    earnings.appeal_decide(appeal=appeal, actor=staff_user, uphold=True, response="The timings look genuine.")

    appeal.refresh_from_db()
    earning.refresh_from_db()
    assert (appeal.status, appeal.response) == (AppealStatus.UPHELD, "The timings look genuine.")
    assert earning.status == EarningStatus.AVAILABLE
    assert balances(study, rater_profile.user_id) == {
        "funds": FUNDS - PAY - FEE,
        "revenue": FEE,
        "pending": 0,
        "available": PAY,
    }
    with pytest.raises(ConflictError):
        earnings.appeal_decide(appeal=appeal, actor=staff_user, uphold=True, response="Deciding it twice")
    assert ledger.ledger_check().ok


def test_a_denied_appeal_leaves_the_rejection(study, vote_as, rater_profile, staff_user):
    vote_as(study, rater_profile)
    earning = Earning.objects.get()
    earnings.earning_reject(earning=earning, reason="Straight-lined answers", actor=staff_user)
    appeal = earnings.earning_appeal(earning=earning, rater=rater_profile.user, message="Please look again.")

    earnings.appeal_decide(appeal=appeal, actor=staff_user, uphold=False, response="All 40 answers were 'A'.")

    earning.refresh_from_db()
    assert earning.status == EarningStatus.REJECTED
    assert balances(study, rater_profile.user_id)["funds"] == FUNDS
    with pytest.raises(ConflictError) as error:
        earnings.earning_appeal(earning=earning, rater=rater_profile.user, message="Once more")
    assert error.value.code == "already_decided"


def test_only_the_rater_appeals_only_rejected_pay(study, vote_as, rater_profile, make_rater):
    vote_as(study, rater_profile)
    earning = Earning.objects.get()
    before = money_state()
    with pytest.raises(ConflictError):
        earnings.earning_appeal(earning=earning, rater=rater_profile.user, message="Not rejected yet")
    with pytest.raises(ApplicationError) as error:
        earnings.earning_appeal(earning=earning, rater=make_rater().user, message="Someone else's")
    assert error.value.code == "not_found"
    assert money_state() == before


# --- Bonuses --------------------------------------------------------------------------------------


def test_a_client_bonus_is_paid_from_its_funds_once_per_key(study, vote_as, rater_profile, owner):
    vote_as(study, rater_profile)
    grant = {
        "actor": owner,
        "rater": rater_profile.user,
        "amount_cents": 500,
        "reason": "Excellent rationales throughout",
        "idempotency_key": "bonus-1",
        "study": study,
        "organization": study.organization,
    }
    earning, created = earnings.bonus_grant(**grant)
    again, created_again = earnings.bonus_grant(**grant)

    assert (created, created_again, again.pk) == (True, False, earning.pk)
    assert (earning.kind, earning.status, earning.amount_cents) == (EarningKind.BONUS, EarningStatus.AVAILABLE, 500)
    assert balances(study, rater_profile.user_id) == {
        "funds": FUNDS - PAY - FEE - 500,
        "revenue": FEE,
        "pending": PAY,
        "available": 500,
    }
    with pytest.raises(ConflictError) as error:
        earnings.bonus_grant(**{**grant, "amount_cents": 600})
    assert error.value.code == "idempotency_conflict"
    assert ledger.ledger_check().ok


def test_a_staff_bonus_is_paid_by_the_platform(rater_profile, staff_user):
    earning, _ = earnings.bonus_grant(
        actor=staff_user,
        rater=rater_profile.user,
        amount_cents=1_000,
        reason="Thanks for the bug report",
        idempotency_key="k",
    )
    assert earning.organization is None
    assert ledger.balance(ledger.platform_expense("usd")) == 1_000
    assert ledger.balance(ledger.rater_available(rater_profile.user_id, "usd")) == 1_000
    assert ledger.ledger_check().ok


@pytest.mark.parametrize("amount", [0, -100, 1.5, "500", True, None, 10**13])
def test_bonus_amounts_that_are_not_positive_whole_cents_change_nothing(rater_profile, staff_user, amount):
    before = money_state()
    with pytest.raises(ApplicationError) as error:
        earnings.bonus_grant(
            actor=staff_user,
            rater=rater_profile.user,
            amount_cents=amount,
            reason="A valid reason",
            idempotency_key="k",
        )
    assert error.value.code == "invalid_amount"
    assert money_state() == before


def test_client_bonuses_go_only_to_its_raters_and_never_overdraw(study, vote_as, rater_profile, owner):
    vote_as(study, rater_profile)
    stranger = UserFactory()
    before = money_state()
    base = {"actor": owner, "reason": "A generous bonus", "study": study, "organization": study.organization}

    with pytest.raises(ApplicationError) as error:
        earnings.bonus_grant(**base, rater=stranger, amount_cents=100, idempotency_key="a")
    assert error.value.code == "not_a_rater_of_study"
    with pytest.raises(ConflictError) as error:
        earnings.bonus_grant(**base, rater=rater_profile.user, amount_cents=FUNDS, idempotency_key="b")
    assert error.value.code == "insufficient_funds"
    with pytest.raises(ApplicationError) as error:
        earnings.bonus_grant(**base, rater=rater_profile.user, amount_cents=100_001, idempotency_key="c")
    assert error.value.code == "invalid_amount"
    assert money_state() == before
