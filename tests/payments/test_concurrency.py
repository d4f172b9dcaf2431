"""Money under concurrency (PostgreSQL only): funds are never overspent, postings to one
account from many connections at once all land, and the ledger still balances."""

from __future__ import annotations

import pytest
from django.db import connection

from evaluations.assignment import VoteInput, task_next, vote_submit
from payments import earnings, ledger
from payments.models import Earning
from tests.threads import run_at_once

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL: row locks across connections"),
    pytest.mark.django_db(transaction=True),
]

COST = 30
THREADS = 16


def test_a_stampede_never_leases_more_than_the_funds_pay_for(settings, make_live_study, make_rater):
    settings.LAUNCH_FUNDED_TASKS_MIN = 1
    study = make_live_study(items=10, funds_cents=5 * COST)
    raters = [make_rater() for _ in range(THREADS)]

    tasks = run_at_once([lambda rater=rater: task_next(rater=rater, study=study) for rater in raters])
    leased = [(rater, task) for rater, task in zip(raters, tasks, strict=True) if task is not None]
    assert len(leased) == 5
    run_at_once([lambda r=r, t=t: vote_submit(task_id=t.pk, rater=r, data=VoteInput(choice="a")) for r, t in leased])

    assert ledger.balance(ledger.org_funds(study.organization_id, "usd")) == 0
    assert Earning.objects.count() == 5
    assert ledger.ledger_check().ok


def test_many_postings_credit_one_rater_at_once(make_live_study, make_rater, staff_user):
    study = make_live_study(items=10)
    target = make_rater()
    voters = [make_rater() for _ in range(THREADS // 2)]
    leases = [(rater, task_next(rater=rater, study=study)) for rater in voters]

    def bonus(n: int):
        return earnings.bonus_grant(
            actor=staff_user,
            rater=target.user,
            amount_cents=100 + n,
            reason="Concurrent bonus",
            idempotency_key=f"k{n}",
        )

    calls = [lambda n=n: bonus(n) for n in range(THREADS // 2)]
    calls += [lambda r=r, t=t: vote_submit(task_id=t.pk, rater=r, data=VoteInput(choice="b")) for r, t in leases]
    run_at_once(calls)

    assert ledger.balance(ledger.rater_available(target.user_id, "usd")) == sum(100 + n for n in range(THREADS // 2))
    assert ledger.balance(ledger.org_funds(study.organization_id, "usd")) == 10_000_000 - len(leases) * COST
    assert ledger.ledger_check().ok
