"""The demo's money flow: the client funds through the sandbox Checkout, raters earn per task,
the floor top-up runs, a payout batch pays them, and every figure agrees with the ledger."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from crowdplatform.accounts.models import Organization
from payments import ledger, selectors
from payments.models import Earning, EarningKind, Funding, FundingStatus, Payout, PayoutBatch, PayoutStatus
from payments.sandbox.control import SandboxControl

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _small_payout_minimum(settings):
    settings.PAYOUT_MINIMUM_CENTS = 1  # the test crowd casts only 30 votes: a few cents each


def seed() -> str:
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def test_seed_demo_moves_the_money_through_stripe_and_every_figure_agrees(settings):
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # nothing listens: seed_demo starts its own sandbox
    output = seed()

    organization = Organization.objects.get(name="Demo Lab")
    funding = Funding.objects.get(organization=organization)  # the public arena's organization has its own
    assert (funding.status, funding.amount_cents) == (FundingStatus.PAID, 100_000)
    assert funding.fee_cents == round(100_000 * 0.029) + 30
    billing = selectors.org_billing(organization=organization)
    assert billing.funded_cents == 100_000
    assert billing.funds_cents == 100_000 - billing.spent_cents
    assert billing.funds_cents == ledger.balance(ledger.org_funds(organization.pk, "usd"))
    (study,) = billing.studies
    assert study.tasks == 30
    assert study.task_pay_cents == sum(
        Earning.objects.filter(kind=EarningKind.TASK, study__organization=organization).values_list(
            "amount_cents", flat=True
        )
    )

    batch = PayoutBatch.objects.get()
    sent = Payout.objects.filter(batch=batch)
    assert sent.count() > 0
    assert set(sent.values_list("status", flat=True)) <= {PayoutStatus.SENT, PayoutStatus.PAID}
    for payout in sent:
        money = selectors.rater_money(rater=payout.rater)
        assert money.paid_cents == payout.amount_cents
        assert money.available_cents == ledger.balance(ledger.rater_available(payout.rater_id, "usd"))
        assert money.earned_cents == sum(
            Earning.objects.filter(rater=payout.rater).exclude(status="rejected").values_list("amount_cents", flat=True)
        )
    assert ledger.balance(ledger.payouts_in_transit("usd")) == 0
    # Both demo fundings (the lab's and the public arena's) came in through Stripe; the batch went out.
    funded = sum(paid.amount_cents - paid.fee_cents for paid in Funding.objects.filter(status=FundingStatus.PAID))
    assert ledger.balance(ledger.stripe_balance("usd")) == funded - sum(sent.values_list("amount_cents", flat=True))
    assert ledger.ledger_check().ok
    assert f"payout batch {batch.pk} sent {sent.count()} transfers" in output


def test_seed_demo_twice_moves_no_more_money(settings):
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"
    seed()
    before = ledger.ledger_check()
    seed()
    after = ledger.ledger_check()
    assert (after.transactions, after.entries) == (before.transactions, before.entries)
    assert (Funding.objects.count(), PayoutBatch.objects.count()) == (2, 1)  # the lab's and the arena's funding


def test_seed_demo_uses_a_sandbox_that_is_already_running(stripe_sandbox, settings):
    seed()
    funding = Funding.objects.get(organization__name="Demo Lab")
    state = SandboxControl(settings.STRIPE_API_BASE).state()
    assert funding.status == FundingStatus.PAID
    assert state["counts"]["checkout.session"] == 2  # the demo lab's, and the public arena's organization's
    assert ledger.ledger_check().ok
