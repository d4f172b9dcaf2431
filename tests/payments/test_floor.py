"""The fair-pay floor: nobody's effective hourly rate on a study stays below it."""

from __future__ import annotations

import pytest

from payments import earnings, ledger
from payments.models import Earning, EarningKind

pytestmark = pytest.mark.django_db

PAY, FEE, FUNDS = 25, 5, 100_000  # 25 cents at an estimated 60 s is exactly the 15.00/h floor


@pytest.fixture
def study(make_live_study):
    return make_live_study(items=6, funds_cents=FUNDS)


def topups(rater_user_id: int) -> list[int]:
    return list(
        Earning.objects.filter(rater_id=rater_user_id, kind=EarningKind.FLOOR_TOPUP)
        .order_by("id")
        .values_list("amount_cents", flat=True)
    )


def test_slow_real_work_is_topped_up_to_the_floor_from_the_clients_funds(study, vote_as, rater_profile):
    user_id = rater_profile.user_id
    vote_as(study, rater_profile, duration_s=300)
    vote_as(study, rater_profile, duration_s=300)  # 2 tasks, 10 minutes: 50 cents is 3.00/h

    assert earnings.floor_topups_run() == 1
    assert earnings.floor_topups_run() == 0  # idempotent

    topup = Earning.objects.get(kind=EarningKind.FLOOR_TOPUP)
    assert topups(user_id) == [200]  # 10 minutes at 15.00/h is 2.50
    assert topup.status == "pending"
    assert topup.detail == {
        "tasks": 2,
        "seconds": 600.0,
        "task_pay_cents": 50,
        "topups_before_cents": 0,
        "floor_cents_per_hour": 1500,
        "required_cents": 250,
    }
    assert topup.reason == (
        "Your 2 tasks took 10.0 minutes; at the floor of 15.00 USD/h that is 2.50, so 2.00 is added."
    )
    assert ledger.balance(ledger.org_funds(study.organization_id, "usd")) == FUNDS - 2 * (PAY + FEE) - 200
    assert ledger.balance(ledger.rater_pending(user_id, "usd")) == 250
    work = earnings.work_on_study(study=study, rater_id=user_id)
    assert work.effective_cents_per_hour() == 1500
    assert ledger.ledger_check().ok


def test_later_work_is_topped_up_only_by_what_is_still_missing(study, vote_as, rater_profile):
    user_id = rater_profile.user_id
    vote_as(study, rater_profile, duration_s=300)
    vote_as(study, rater_profile, duration_s=300)
    earnings.floor_topups_run()
    vote_as(study, rater_profile, duration_s=30)  # 630 s: 2.63 owed, 2.75 paid
    assert earnings.floor_topups_run() == 0
    vote_as(study, rater_profile, duration_s=500)  # 1130 s: 4.71 owed, 3.00 paid

    assert earnings.floor_topups_run() == 1
    assert topups(user_id) == [200, 171]
    assert earnings.work_on_study(study=study, rater_id=user_id).effective_cents_per_hour() == 1501
    assert ledger.ledger_check().ok


def test_fast_raters_get_no_top_up(study, vote_as, rater_profile):
    vote_as(study, rater_profile, duration_s=20)
    vote_as(study, rater_profile, duration_s=59)
    assert earnings.floor_topups_run() == 0
    assert topups(rater_profile.user_id) == []


def test_rejected_work_counts_neither_its_time_nor_its_pay(study, vote_as, rater_profile, staff_user):
    vote_as(study, rater_profile, duration_s=500)
    vote_as(study, rater_profile, duration_s=30)
    slow = Earning.objects.filter(kind=EarningKind.TASK).order_by("id").first()
    earnings.earning_reject(earning=slow, reason="Left the tab open for minutes", actor=staff_user)

    assert earnings.floor_topups_run() == 0  # 30 s for 25 cents is above the floor
    assert earnings.work_on_study(study=study, rater_id=rater_profile.user_id).tasks == 1


def test_a_study_with_a_higher_floor_tops_up_to_its_own_floor(make_live_study, vote_as, rater_profile):
    study = make_live_study(funds_cents=FUNDS, pay_per_task_cents=50, pay_floor_cents_per_hour=3000)
    vote_as(study, rater_profile, duration_s=120)  # 2 minutes at 30.00/h is 1.00

    assert earnings.floor_topups_run(study=study) == 1
    assert topups(rater_profile.user_id) == [50]
