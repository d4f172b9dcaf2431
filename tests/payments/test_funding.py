"""Client funding end to end: our checkout, the sandbox's payment page, its signed webhook, the ledger.

Everything goes through the real SDK against the sandbox (`stripe_sandbox`, from conftest) and
through the real webhook view. The tests run in real transactions so that what happens on commit
(resuming and pausing studies, retrying events that waited for a payment) happens as in production.
"""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.core import mail

from crowdplatform.core.errors import ApplicationError
from crowdplatform.core.models import AuditEvent
from evaluations.models import StudyStatus
from evaluations.services import study_pause
from payments import ledger, stripe_api
from payments.funding import funding_checkout_create
from payments.models import Funding, FundingStatus, LedgerTransaction, StripeEvent, StripeEventStatus
from payments.webhooks import events_retry_pending
from tests.payments.webhook_delivery import (
    deliver,
    deliver_all,
    endpoint_url,
    funding_open,
    funding_paid,
    refund_create,
    stripe_platform_balance,
)

pytestmark = pytest.mark.django_db(transaction=True)

SITE = "https://crowd.example"
# The sandbox charges Stripe's card price, 2.9% + 30¢: on 100.00 that is 3.20.
GROSS, FEE, NET = 10_000, 320, 9_680
DISPUTE_FEE = 1_500


@pytest.fixture(autouse=True)
def _site(settings):
    settings.SITE_URL = SITE


def money(organization) -> dict[str, int]:
    """The organization's funds and the platform's Stripe balance and fees, as people read them."""
    return {
        "org_funds": ledger.balance(ledger.org_funds(organization.pk, "usd")),
        "stripe_balance": ledger.balance(ledger.stripe_balance("usd")),
        "stripe_fees": ledger.balance(ledger.stripe_fees("usd")),
    }


def entries(reference: str) -> dict[str, int]:
    txn = LedgerTransaction.objects.get(reference=reference)
    return dict(txn.entries.values_list("account__key", "amount_cents"))


def audit_actions() -> list[str]:
    return list(
        AuditEvent.objects.filter(action__startswith="funding.").order_by("id").values_list("action", flat=True)
    )


NOTHING = {"org_funds": 0, "stripe_balance": 0, "stripe_fees": 0}


# --- Opening a checkout ---------------------------------------------------------------------------


def test_checkout_create_opens_a_stripe_checkout_session(stripe_sandbox, organization, owner):
    funding = funding_checkout_create(organization=organization, actor=owner, amount_cents=12_345)

    funding.refresh_from_db()
    assert (funding.status, funding.amount_cents, funding.currency, funding.created_by) == (
        FundingStatus.OPEN,
        12_345,
        "usd",
        owner,
    )
    assert funding.checkout_session_id.startswith("cs_test_")
    assert funding.checkout_url == f"{stripe_sandbox.base_url}/sandbox/checkout/{funding.checkout_session_id}"
    session = stripe_api.checkout_session_retrieve(session_id=funding.checkout_session_id)
    assert (session["mode"], session["amount_total"], session["currency"], session["payment_status"]) == (
        "payment",
        12_345,
        "usd",
        "unpaid",
    )
    assert session["client_reference_id"] == str(funding.pk)
    assert session["metadata"] == {"funding_id": str(funding.pk), "organization_id": str(organization.pk)}
    assert session["success_url"] == f"{SITE}/client/orgs/alpha-lab/billing/?funding={funding.pk}&result=success"
    assert session["cancel_url"] == f"{SITE}/client/orgs/alpha-lab/billing/?funding={funding.pk}&result=cancel"
    assert session["customer_email"] == owner.email
    assert [line["name"] for line in stripe_sandbox.engine.checkout_lines(funding.checkout_session_id)] == [
        "Prepaid evaluation funds for Alpha Lab"
    ]
    assert audit_actions() == ["funding.create", "funding.checkout_open"]
    # Opening a checkout moves no money and Stripe sends no event yet.
    assert LedgerTransaction.objects.count() == 0
    assert stripe_sandbox.take_deliveries() == []
    assert ledger.ledger_check().ok


def test_stripe_failure_marks_the_funding_failed_and_moves_nothing(stripe_sandbox, organization, owner):
    stripe_sandbox.fault(method="POST", path_prefix="/v1/checkout/sessions", kind="500")

    with pytest.raises(ApplicationError) as caught:
        funding_checkout_create(organization=organization, actor=owner, amount_cents=GROSS)

    assert caught.value.code == "payment_provider_error"
    assert caught.value.message == (
        "Stripe could not open a payment page right now, and nothing was charged. Please try again in a moment."
    )
    funding = Funding.objects.get()
    assert (funding.status, funding.checkout_session_id, funding.checkout_url) == (FundingStatus.FAILED, None, "")
    assert funding.failure_reason.startswith("Stripe could not open the checkout: ")
    assert audit_actions() == ["funding.create", "funding.checkout_failed"]
    assert stripe_sandbox.state()["counts"].get("checkout.session", 0) == 0
    assert LedgerTransaction.objects.count() == 0
    assert ledger.ledger_check().ok


# --- Paying ---------------------------------------------------------------------------------------


def test_paid_checkout_credits_the_gross_and_the_platform_bears_the_fee(client, stripe_sandbox, organization, owner):
    funding = funding_open(organization, owner, GROSS)
    stripe_sandbox.checkout_pay(session_id=funding.checkout_session_id, outcome="paid")

    # The client is back from Stripe's page, but until Stripe's signed event arrives nothing is credited.
    funding.refresh_from_db()
    assert funding.status == FundingStatus.OPEN
    assert money(organization) == NOTHING

    deliveries = stripe_sandbox.take_deliveries()
    assert [delivery.event_type for delivery in deliveries] == ["checkout.session.completed"]
    assert deliver(client, deliveries[0]).status_code == 200

    funding.refresh_from_db()
    assert funding.status == FundingStatus.PAID
    assert funding.paid_at is not None
    assert funding.fee_cents == FEE
    assert funding.payment_intent_id.startswith("pi_")
    assert funding.charge_id.startswith("ch_")
    assert entries(f"funding:{funding.pk}") == {
        f"org_funds:{organization.pk}:usd": -GROSS,
        "stripe_balance:-:usd": NET,
        "stripe_fees:-:usd": FEE,
    }
    assert money(organization) == {"org_funds": GROSS, "stripe_balance": NET, "stripe_fees": FEE}
    assert stripe_platform_balance(stripe_sandbox) == NET
    assert audit_actions() == ["funding.create", "funding.checkout_open", "funding.paid"]
    assert AuditEvent.objects.get(action="funding.paid").data == {
        "amount_cents": GROSS,
        "fee_cents": FEE,
        "charge": funding.charge_id,
    }
    assert ledger.ledger_check().ok


def test_a_declined_card_credits_nothing_and_the_client_can_pay_again(client, stripe_sandbox, organization, owner):
    funding = funding_open(organization, owner, GROSS)

    stripe_sandbox.checkout_pay(session_id=funding.checkout_session_id, outcome="declined")

    assert stripe_sandbox.take_deliveries() == []
    funding.refresh_from_db()
    assert funding.status == FundingStatus.OPEN
    assert money(organization) == NOTHING
    assert LedgerTransaction.objects.count() == 0
    assert ledger.ledger_check().ok

    # Checkout keeps the session open: another card works.
    stripe_sandbox.checkout_pay(session_id=funding.checkout_session_id, outcome="paid")
    deliver_all(client, stripe_sandbox)
    funding.refresh_from_db()
    assert funding.status == FundingStatus.PAID
    assert money(organization) == {"org_funds": GROSS, "stripe_balance": NET, "stripe_fees": FEE}
    assert ledger.ledger_check().ok


def test_an_async_payment_is_credited_only_when_it_succeeds(client, stripe_sandbox, organization, owner):
    funding = funding_open(organization, owner, GROSS)
    stripe_sandbox.checkout_pay(session_id=funding.checkout_session_id, outcome="async")
    deliver_all(client, stripe_sandbox)

    funding.refresh_from_db()
    assert funding.status == FundingStatus.PROCESSING
    assert money(organization) == NOTHING

    stripe_sandbox.checkout_settle(session_id=funding.checkout_session_id, success=True)
    [delivery] = stripe_sandbox.take_deliveries()
    assert delivery.event_type == "checkout.session.async_payment_succeeded"
    assert deliver(client, delivery).status_code == 200

    funding.refresh_from_db()
    assert (funding.status, funding.fee_cents) == (FundingStatus.PAID, FEE)
    assert money(organization) == {"org_funds": GROSS, "stripe_balance": NET, "stripe_fees": FEE}
    assert stripe_platform_balance(stripe_sandbox) == NET
    assert audit_actions() == ["funding.create", "funding.checkout_open", "funding.processing", "funding.paid"]
    assert ledger.ledger_check().ok


def test_async_success_arriving_before_the_completion_is_credited_once(client, stripe_sandbox, organization, owner):
    funding = funding_open(organization, owner, GROSS)
    stripe_sandbox.checkout_pay(session_id=funding.checkout_session_id, outcome="async")
    stripe_sandbox.checkout_settle(session_id=funding.checkout_session_id, success=True)
    completed, succeeded = stripe_sandbox.take_deliveries()
    assert (completed.event_type, succeeded.event_type) == (
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
    )

    assert deliver(client, succeeded).status_code == 200
    assert deliver(client, completed).status_code == 200  # says "unpaid": must not undo the payment

    funding.refresh_from_db()
    assert funding.status == FundingStatus.PAID
    assert LedgerTransaction.objects.filter(kind="funding").count() == 1
    assert money(organization) == {"org_funds": GROSS, "stripe_balance": NET, "stripe_fees": FEE}
    assert set(StripeEvent.objects.values_list("status", flat=True)) == {StripeEventStatus.PROCESSED}
    assert ledger.ledger_check().ok


def test_a_failed_async_payment_marks_the_funding_failed(client, stripe_sandbox, organization, owner):
    funding = funding_open(organization, owner, GROSS)
    stripe_sandbox.checkout_pay(session_id=funding.checkout_session_id, outcome="async")
    deliver_all(client, stripe_sandbox)
    stripe_sandbox.checkout_settle(session_id=funding.checkout_session_id, success=False)
    [delivery] = stripe_sandbox.take_deliveries()
    assert delivery.event_type == "checkout.session.async_payment_failed"

    assert deliver(client, delivery).status_code == 200

    funding.refresh_from_db()
    assert (funding.status, funding.failure_reason) == (FundingStatus.FAILED, "The customer's bank declined the debit.")
    assert money(organization) == NOTHING
    assert LedgerTransaction.objects.count() == 0
    assert audit_actions()[-1] == "funding.failed"
    assert ledger.ledger_check().ok


def test_an_amount_other_than_the_fundings_is_never_credited(client, stripe_sandbox, organization, owner):
    funding = funding_open(organization, owner, GROSS)
    # Our record and what Stripe charged disagree (a bug, or tampering): refuse, and tell staff.
    Funding.objects.filter(pk=funding.pk).update(amount_cents=9_000)
    stripe_sandbox.checkout_pay(session_id=funding.checkout_session_id, outcome="paid")

    [response] = deliver_all(client, stripe_sandbox)

    assert response.json()["status"] == StripeEventStatus.PROCESSED
    funding.refresh_from_db()
    assert funding.status == FundingStatus.FAILED
    assert funding.failure_reason == (
        "Not credited: the checkout reported 10000 usd, but this top-up is 9000 usd. Staff must review."
    )
    assert money(organization) == NOTHING
    assert LedgerTransaction.objects.count() == 0
    assert audit_actions()[-1] == "funding.amount_mismatch"
    assert ledger.ledger_check().ok


def test_a_checkout_session_we_did_not_open_is_recorded_and_ignored(client, stripe_sandbox, organization):
    session = stripe_api.checkout_session_create(
        amount=GROSS,
        currency="usd",
        product_name="Something else",
        client_reference_id="not-ours",
        metadata={},
        success_url=f"{SITE}/elsewhere",
        cancel_url=f"{SITE}/elsewhere",
        idempotency_key="someone-else-1",
    )
    stripe_sandbox.checkout_pay(session_id=session["id"], outcome="paid")

    deliver_all(client, stripe_sandbox)

    event = StripeEvent.objects.get()
    assert (event.type, event.status, event.error) == (
        "checkout.session.completed",
        StripeEventStatus.IGNORED,
        f"Checkout Session {session['id']} was not opened by this platform.",
    )
    assert Funding.objects.count() == 0
    assert LedgerTransaction.objects.count() == 0
    assert ledger.ledger_check().ok


def test_the_funding_is_found_by_its_reference_when_the_session_id_was_not_saved(
    client, stripe_sandbox, organization, owner
):
    funding = funding_open(organization, owner, GROSS)
    session_id = funding.checkout_session_id
    # As if we crashed between Stripe's answer and saving it.
    Funding.objects.filter(pk=funding.pk).update(checkout_session_id=None)
    stripe_sandbox.checkout_pay(session_id=session_id, outcome="paid")

    deliver_all(client, stripe_sandbox)

    funding.refresh_from_db()
    assert (funding.status, funding.checkout_session_id) == (FundingStatus.PAID, session_id)
    assert money(organization) == {"org_funds": GROSS, "stripe_balance": NET, "stripe_fees": FEE}
    assert ledger.ledger_check().ok


# --- Refunds and disputes -------------------------------------------------------------------------


def test_a_full_refund_takes_the_gross_back_and_the_fee_stays_spent(client, stripe_sandbox, organization, owner):
    funding = funding_paid(client, stripe_sandbox, organization, owner, GROSS)

    refund = refund_create(stripe_sandbox, charge_id=funding.charge_id)
    deliver_all(client, stripe_sandbox)

    funding.refresh_from_db()
    assert funding.refunded_cents == GROSS
    assert entries(f"refund:{refund['id']}") == {
        f"org_funds:{organization.pk}:usd": GROSS,
        "stripe_balance:-:usd": -GROSS,
    }
    # Stripe keeps its fee on a refunded charge: the platform bears it.
    assert money(organization) == {"org_funds": 0, "stripe_balance": NET - GROSS, "stripe_fees": FEE}
    assert stripe_platform_balance(stripe_sandbox) == NET - GROSS
    assert audit_actions()[-1] == "funding.refund"
    assert ledger.ledger_check().ok


def test_partial_refunds_each_post_once(client, stripe_sandbox, organization, owner):
    funding = funding_paid(client, stripe_sandbox, organization, owner, GROSS)

    first = refund_create(stripe_sandbox, charge_id=funding.charge_id, amount=2_500)
    [first_delivery] = stripe_sandbox.take_deliveries()
    deliver(client, first_delivery)
    second = refund_create(stripe_sandbox, charge_id=funding.charge_id, amount=1_000)
    deliver_all(client, stripe_sandbox)  # its event lists both refunds
    deliver(client, first_delivery)  # and Stripe redelivers the first

    funding.refresh_from_db()
    assert funding.refunded_cents == 3_500
    assert sorted(LedgerTransaction.objects.filter(kind="refund").values_list("reference", flat=True)) == sorted(
        [f"refund:{first['id']}", f"refund:{second['id']}"]
    )
    assert money(organization) == {"org_funds": GROSS - 3_500, "stripe_balance": NET - 3_500, "stripe_fees": FEE}
    assert stripe_platform_balance(stripe_sandbox) == NET - 3_500
    assert ledger.ledger_check().ok


def test_a_refund_event_without_the_refund_list_uses_the_refunded_total(client, stripe_sandbox, organization, owner):
    """Newer API versions leave `refunds` out of the charge in events: the cumulative
    `amount_refunded` then says what to post, and an older snapshot posts nothing."""
    funding = funding_paid(client, stripe_sandbox, organization, owner, GROSS)
    refund_create(stripe_sandbox, charge_id=funding.charge_id, amount=2_500)
    refund_create(stripe_sandbox, charge_id=funding.charge_id, amount=1_000)
    snapshots = [json.loads(delivery.payload) for delivery in stripe_sandbox.take_deliveries()]

    def post_without_refund_list(event: dict, new_id: str) -> int:
        event = {**event, "id": new_id}
        event["data"] = {"object": {k: v for k, v in event["data"]["object"].items() if k != "refunds"}}
        payload = json.dumps(event).encode()
        signature = stripe_api.signature_header(payload=payload, secret=settings.STRIPE_WEBHOOK_SECRET)
        response = client.post(
            endpoint_url(connect=False),
            data=payload,
            content_type="application/json",
            headers={"Stripe-Signature": signature},
        )
        return response.status_code

    assert post_without_refund_list(snapshots[0], "evt_norefunds_1") == 200  # amount_refunded 2500
    assert post_without_refund_list(snapshots[1], "evt_norefunds_2") == 200  # amount_refunded 3500
    assert post_without_refund_list(snapshots[0], "evt_norefunds_3") == 200  # older snapshot, arriving late

    funding.refresh_from_db()
    assert funding.refunded_cents == 3_500
    assert sorted(LedgerTransaction.objects.filter(kind="refund").values_list("reference", flat=True)) == [
        f"refund:{funding.charge_id}:upto:2500",
        f"refund:{funding.charge_id}:upto:3500",
    ]
    assert entries(f"refund:{funding.charge_id}:upto:3500")[f"org_funds:{organization.pk}:usd"] == 1_000
    assert money(organization) == {"org_funds": GROSS - 3_500, "stripe_balance": NET - 3_500, "stripe_fees": FEE}
    assert stripe_platform_balance(stripe_sandbox) == NET - 3_500
    assert ledger.ledger_check().ok


def test_a_lost_dispute_takes_the_amount_and_the_fee(client, stripe_sandbox, organization, owner):
    funding = funding_paid(client, stripe_sandbox, organization, owner, GROSS)

    dispute = stripe_sandbox.charge_dispute(charge_id=funding.charge_id)
    deliver_all(client, stripe_sandbox)

    funding.refresh_from_db()
    assert funding.disputed_cents == GROSS
    assert entries(f"dispute:{dispute['id']}") == {
        f"org_funds:{organization.pk}:usd": GROSS,
        "stripe_balance:-:usd": -GROSS,
    }
    assert entries(f"dispute:{dispute['id']}:fee") == {
        "stripe_fees:-:usd": DISPUTE_FEE,
        "stripe_balance:-:usd": -DISPUTE_FEE,
    }
    after_dispute = {"org_funds": 0, "stripe_balance": NET - GROSS - DISPUTE_FEE, "stripe_fees": FEE + DISPUTE_FEE}
    assert money(organization) == after_dispute
    assert stripe_platform_balance(stripe_sandbox) == NET - GROSS - DISPUTE_FEE

    stripe_sandbox.dispute_close(dispute_id=dispute["id"], won=False)
    [response] = deliver_all(client, stripe_sandbox)

    assert response.json()["status"] == StripeEventStatus.IGNORED
    assert StripeEvent.objects.get(type="charge.dispute.closed").error == "Dispute closed as lost: no money moves."
    funding.refresh_from_db()
    assert funding.disputed_cents == GROSS
    assert money(organization) == after_dispute
    assert stripe_platform_balance(stripe_sandbox) == NET - GROSS - DISPUTE_FEE
    assert ledger.ledger_check().ok


def test_a_won_dispute_returns_the_amount_but_not_the_fee(client, stripe_sandbox, organization, owner):
    funding = funding_paid(client, stripe_sandbox, organization, owner, GROSS)
    dispute = stripe_sandbox.charge_dispute(charge_id=funding.charge_id)
    deliver_all(client, stripe_sandbox)

    stripe_sandbox.dispute_close(dispute_id=dispute["id"], won=True)
    deliver_all(client, stripe_sandbox)

    funding.refresh_from_db()
    assert funding.disputed_cents == 0
    assert entries(f"dispute:{dispute['id']}:won") == {
        f"org_funds:{organization.pk}:usd": -GROSS,
        "stripe_balance:-:usd": GROSS,
    }
    assert money(organization) == {
        "org_funds": GROSS,
        "stripe_balance": NET - DISPUTE_FEE,
        "stripe_fees": FEE + DISPUTE_FEE,
    }
    assert stripe_platform_balance(stripe_sandbox) == NET - DISPUTE_FEE
    assert audit_actions()[-2:] == ["funding.dispute", "funding.dispute_won"]
    assert ledger.ledger_check().ok


def test_a_dispute_won_before_it_was_recorded_opening_waits_for_it(client, stripe_sandbox, organization, owner):
    funding = funding_paid(client, stripe_sandbox, organization, owner, GROSS)
    dispute = stripe_sandbox.charge_dispute(charge_id=funding.charge_id)
    stripe_sandbox.dispute_close(dispute_id=dispute["id"], won=True)
    created, closed = stripe_sandbox.take_deliveries()

    assert deliver(client, closed).json()["status"] == StripeEventStatus.DEFERRED
    assert StripeEvent.objects.get(type="charge.dispute.closed").error == (
        f"Dispute {dispute['id']} was won before we recorded it being opened."
    )
    assert deliver(client, created).json()["status"] == StripeEventStatus.PROCESSED
    assert money(organization)["org_funds"] == 0

    assert events_retry_pending() == 1

    closed_event = StripeEvent.objects.get(type="charge.dispute.closed")
    assert (closed_event.status, closed_event.attempts, closed_event.error) == (StripeEventStatus.PROCESSED, 2, "")
    assert money(organization) == {
        "org_funds": GROSS,
        "stripe_balance": NET - DISPUTE_FEE,
        "stripe_fees": FEE + DISPUTE_FEE,
    }
    assert stripe_platform_balance(stripe_sandbox) == NET - DISPUTE_FEE
    assert ledger.ledger_check().ok


# --- Studies and funds ----------------------------------------------------------------------------


def test_a_study_paused_for_lack_of_funds_resumes_once_a_top_up_is_credited(
    client, stripe_sandbox, organization, owner, make_live_study
):
    starved = make_live_study(funds_cents=300)  # exactly the launch minimum: 10 tasks at 25 + 5 fee
    starved = study_pause(study=starved, actor=None, paused_reason="funds")
    by_hand = make_live_study(name="Paused by the client", funds_cents=0)
    by_hand = study_pause(study=by_hand, actor=owner)
    funding = funding_open(organization, owner, GROSS)
    stripe_sandbox.checkout_pay(session_id=funding.checkout_session_id, outcome="paid")

    starved.refresh_from_db()
    assert starved.status == StudyStatus.PAUSED  # paying at Stripe is not enough: the event must arrive

    deliver_all(client, stripe_sandbox)

    starved.refresh_from_db()
    by_hand.refresh_from_db()
    assert (starved.status, starved.paused_reason) == (StudyStatus.LIVE, "")
    assert by_hand.status == StudyStatus.PAUSED  # a person paused it: only a person resumes it
    assert money(organization)["org_funds"] == 300 + GROSS
    assert ledger.ledger_check().ok


@pytest.mark.parametrize("reversal", ["refund", "dispute"])
def test_money_taken_back_pauses_live_studies_with_a_notice(
    reversal, client, stripe_sandbox, organization, owner, make_live_study
):
    funding = funding_paid(client, stripe_sandbox, organization, owner, 5_000)
    study = make_live_study(funds_cents=0)  # launched on the top-up
    assert study.status == StudyStatus.LIVE
    mail.outbox.clear()

    if reversal == "refund":
        refund_create(stripe_sandbox, charge_id=funding.charge_id)
    else:
        stripe_sandbox.charge_dispute(charge_id=funding.charge_id)
    deliver_all(client, stripe_sandbox)

    study.refresh_from_db()
    assert (study.status, study.paused_reason) == (StudyStatus.PAUSED, "funds")
    assert money(organization)["org_funds"] == 0
    [notice] = mail.outbox
    assert notice.to == [owner.email]
    assert notice.subject == "[crowdplatform] Studies paused: prepaid funds ran out"
    assert "Coding help" in notice.body
    assert ledger.ledger_check().ok

    # A new top-up resumes it.
    funding_paid(client, stripe_sandbox, organization, owner, 5_000)
    study.refresh_from_db()
    assert (study.status, study.paused_reason) == (StudyStatus.LIVE, "")
    assert money(organization)["org_funds"] == 5_000
    assert ledger.ledger_check().ok
