"""Reconciliation: the ledger against the sandbox's transfers, balance transactions and balance.

The scene: a client funds 100.00 USD through the sandbox checkout (Stripe keeps a 3.20 fee), two
raters earn 40.00 and 25.00, and a batch pays them. Then one thing at a time goes wrong.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests
from django.core import mail
from django.utils import timezone

from payments import ledger, stripe_api, tasks
from payments.models import (
    Funding,
    Payout,
    PayoutBatchTrigger,
    ReconciliationMismatch,
    ReconciliationRun,
    ReconciliationStatus,
)
from payments.payouts import payout_batch_create, payout_batch_send
from payments.reconciliation import reconcile
from tests.money import fund
from tests.payments import sandbox_fixtures
from tests.payments.test_payouts import USD, account_id, assert_ledger_ok, onboarded, stripe_balance_in_ledger
from tests.payments.webhook_delivery import deliver_all, funding_paid, refund_create

# The fixture, bound here so these tests don't depend on conftest (an import would trip F811).
stripe_sandbox = sandbox_fixtures.stripe_sandbox

pytestmark = pytest.mark.django_db

FUNDED, FEE = 10_000, 320  # Stripe's fee on 100.00: 2.9% + 0.30
EARNED = (4000, 2500)
LEFT = FUNDED - FEE - sum(EARNED)  # 31.80 stays on the platform's Stripe balance


@pytest.fixture
def scene(stripe_sandbox, client, organization, owner, staff_user, settings):
    settings.ADMINS = [("Payments staff", "payments@example.org")]
    stripe_sandbox.configure(auto_connected_payouts=False)  # transfers stay reversible
    funding = funding_paid(client, stripe_sandbox, organization, owner, FUNDED)
    raters = [onboarded(stripe_sandbox) for _ in EARNED]
    ledger.ledger_post(
        postings=[
            ledger.move(
                reference=f"test-earning:{rater.pk}",
                kind="earning_release",
                amount_cents=cents,
                debit=ledger.org_funds(organization.pk, USD),
                credit=ledger.rater_available(rater.pk, USD),
                rater_id=rater.pk,
            )
            for rater, cents in zip(raters, EARNED, strict=True)
        ]
    )
    batch = payout_batch_create(trigger=PayoutBatchTrigger.STAFF, actor=staff_user)
    assert payout_batch_send(batch_id=batch.pk) == 2
    deliver_all(client, stripe_sandbox)
    assert stripe_balance_in_ledger() == LEFT
    assert stripe_sandbox.state()["platform_balance"][USD] == LEFT
    mail.outbox.clear()
    return {"funding": funding, "raters": raters, "payouts": list(batch.payouts.order_by("id"))}


def mismatches(run: ReconciliationRun) -> list[tuple]:
    return [(m.kind, m.reference, m.ledger_cents, m.stripe_cents) for m in run.mismatches.order_by("id")]


def test_a_clean_ledger_reconciles(scene):
    run = reconcile()

    assert (run.status, run.error, mismatches(run)) == (ReconciliationStatus.OK, "", [])
    assert run.checked == {
        "transfers": 2,
        "payouts": 2,
        "balance_transactions": 3,  # the charge and the two transfers
        "charges": 1,
        "fundings": 1,
        "refunds": 0,
        "disputes": 0,
        "currencies": ["usd"],
    }
    assert run.finished_at is not None
    assert mail.outbox == []
    assert_ledger_ok()


def test_a_transfer_made_at_stripe_that_the_ledger_lacks(scene, stripe_sandbox):
    rogue = stripe_api.transfer_create(
        amount=777,
        currency=USD,
        destination=account_id(scene["raters"][0]),
        idempotency_key="made-in-the-dashboard",
        transfer_group="manual",
        metadata={},
    )

    run = reconcile()

    assert run.status == ReconciliationStatus.MISMATCHES
    assert mismatches(run) == [
        ("transfer_not_in_ledger", rogue["id"], None, 777),
        ("balance", "stripe_balance:usd", LEFT, LEFT - 777),
    ]
    first, balance = run.mismatches.order_by("id")
    assert first.detail == (
        f"Stripe transfer {rogue['id']} of 7.77 USD to {account_id(scene['raters'][0])} is not recorded by any payout."
    )
    assert balance.detail == (
        "The ledger's Stripe balance is 31.80 USD but Stripe's balance (available + pending) is 24.03 USD: "
        "a difference of -7.77 USD."
    )
    (message,) = mail.outbox
    assert message.to == ["payments@example.org"]
    assert message.subject.endswith(f"Reconciliation {run.pk}: 2 mismatch(es) between the ledger and Stripe")
    assert rogue["id"] in message.body
    assert_ledger_ok()


def test_an_amount_that_differs_is_reported_with_both_amounts(scene):
    payout = scene["payouts"][0]
    Payout.objects.filter(pk=payout.pk).update(amount_cents=4100)  # say a bug recorded the wrong amount
    Funding.objects.filter(pk=scene["funding"].pk).update(fee_cents=300)

    run = reconcile()

    assert mismatches(run) == [
        ("transfer_amount", payout.stripe_transfer_id, 4100, 4000),
        ("charge_fee", scene["funding"].charge_id, 300, FEE),
    ]
    assert run.mismatches.first().detail == (
        f"Payout {payout.pk} is 41.00 USD but Stripe transfer {payout.stripe_transfer_id} is 40.00 USD."
    )


def test_a_balance_difference_is_reported(scene):
    fund(scene["funding"].organization_id, 1234)  # money in the ledger's Stripe balance that Stripe never got

    run = reconcile()

    assert mismatches(run) == [("balance", "stripe_balance:usd", LEFT + 1234, LEFT)]


def test_a_refund_not_yet_in_the_ledger_is_reported_until_its_webhook_arrives(scene, stripe_sandbox, client):
    refund = refund_create(stripe_sandbox, charge_id=scene["funding"].charge_id, amount=1000)

    before = reconcile()
    deliver_all(client, stripe_sandbox)
    after = reconcile()

    assert mismatches(before) == [
        ("refund_not_in_ledger", f"refund:{refund['id']}", None, 1000),
        ("balance", "stripe_balance:usd", LEFT, LEFT - 1000),
    ]
    assert (after.status, mismatches(after)) == (ReconciliationStatus.OK, [])
    assert after.checked["refunds"] == 1


def test_a_dispute_and_its_fee_are_checked_against_their_postings(scene, stripe_sandbox, client):
    dispute = stripe_sandbox.charge_dispute(charge_id=scene["funding"].charge_id, amount=3000)

    before = reconcile()
    deliver_all(client, stripe_sandbox)
    after = reconcile()

    assert mismatches(before) == [
        ("dispute_not_in_ledger", f"dispute:{dispute['id']}", None, 3000),
        ("dispute_not_in_ledger", f"dispute:{dispute['id']}:fee", None, 1500),
        ("balance", "stripe_balance:usd", LEFT, LEFT - 3000 - 1500),
    ]
    assert (after.status, mismatches(after)) == (ReconciliationStatus.OK, [])


def test_a_payout_whose_transfer_stripe_does_not_have(scene):
    payout = scene["payouts"][1]
    real = payout.stripe_transfer_id
    Payout.objects.filter(pk=payout.pk).update(stripe_transfer_id="tr_never_made")

    run = reconcile()

    assert mismatches(run) == [
        ("transfer_not_in_ledger", real, None, 2500),
        ("payout_not_at_stripe", f"payout:{payout.pk}", 2500, None),
    ]
    assert run.mismatches.get(kind="transfer_not_in_ledger").detail.endswith(
        f"is not recorded by any payout (its metadata names payout {payout.pk}, which has not recorded it)."
    )


def test_a_reversal_made_at_stripe_and_not_yet_recorded(scene, stripe_sandbox, client):
    payout = scene["payouts"][0]
    response = requests.post(
        f"{stripe_sandbox.base_url}/v1/transfers/{payout.stripe_transfer_id}/reversals",
        data={"amount": "1500"},
        headers={"Authorization": "Bearer sk_test_sandbox"},
        timeout=5,
    )
    assert response.status_code == 200

    run = reconcile()

    assert mismatches(run) == [
        ("transfer_reversal", payout.stripe_transfer_id, 0, 1500),
        ("balance", "stripe_balance:usd", LEFT, LEFT + 1500),
    ]


def test_stripe_unreachable_makes_an_error_run_and_tells_staff(scene, settings):
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # nothing listens there

    run = reconcile()

    assert run.status == ReconciliationStatus.ERROR
    assert run.error.startswith("Stripe could not be reached or refused:")
    assert ReconciliationMismatch.objects.count() == 0
    (message,) = mail.outbox
    assert message.subject.endswith(f"Reconciliation {run.pk} could not complete")


def test_objects_newer_than_the_run_are_left_for_the_next_one(scene):
    run = reconcile(now=timezone.now() - timedelta(hours=1))

    assert mismatches(run) == []
    assert (run.checked["transfers"], run.checked["payouts"], run.checked["fundings"]) == (0, 0, 0)


def test_the_daily_task_runs_a_reconciliation(scene):
    run_id = tasks.reconciliation_run()

    assert ReconciliationRun.objects.get(pk=run_id).status == ReconciliationStatus.OK
