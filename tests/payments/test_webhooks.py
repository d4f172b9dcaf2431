"""Stripe webhooks: signatures, storing by event id before handling, duplicates, order, failures.

Deliveries come from the sandbox (signed as Stripe signs them) or are built here and signed with the
SDK's own helper; they all go through the real views with the Django test client. The tests run in
real transactions: the event row is committed before its handler runs, as in production.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from payments import ledger, stripe_api
from payments.models import Funding, FundingStatus, LedgerTransaction, StripeEvent, StripeEventStatus, WebhookEndpoint
from payments.sandbox.webhooks import signature_header as sandbox_signature
from payments.tasks import stripe_events_retry, stripe_events_sync
from payments.webhooks import (
    EVENT_MAX_ATTEMPTS,
    EVENT_RETRY_WINDOW,
    HANDLERS,
    event_process,
    events_retry_pending,
    events_sync,
    webhook_receive,
)
from tests.payments.webhook_delivery import (
    deliver,
    deliver_all,
    endpoint_url,
    funding_open,
    funding_paid,
    refund_create,
    stripe_platform_balance,
)
from tests.threads import run_at_once

pytestmark = pytest.mark.django_db(transaction=True)

GROSS, FEE, NET = 10_000, 320, 9_680


def event_of(event_type: str, obj: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """A Stripe-shaped event, for types the sandbox does not emit."""
    return {
        "id": f"evt_test_{uuid.uuid4().hex[:20]}",
        "object": "event",
        "api_version": stripe_api.API_VERSION,
        "created": int(time.time()),
        "data": {"object": obj or {"id": "cus_test_1", "object": "customer"}},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
        **extra,
    }


def post_signed(
    client,
    payload: bytes,
    *,
    secret: str | None = None,
    connect: bool = False,
    timestamp: int | None = None,
):
    secret = secret or (settings.STRIPE_CONNECT_WEBHOOK_SECRET if connect else settings.STRIPE_WEBHOOK_SECRET)
    signature = stripe_api.signature_header(payload=payload, secret=secret, timestamp=timestamp)
    return client.post(
        endpoint_url(connect=connect),
        data=payload,
        content_type="application/json",
        headers={"Stripe-Signature": signature},
    )


def nothing_stored(organization) -> None:
    assert StripeEvent.objects.count() == 0
    assert LedgerTransaction.objects.count() == 0
    assert ledger.balance(ledger.org_funds(organization.pk, "usd")) == 0
    assert ledger.ledger_check().ok


def paid_at_stripe(stripe_sandbox, organization, owner) -> tuple[Funding, Any]:
    """A top-up paid on Stripe's page; its `checkout.session.completed` delivery not yet sent."""
    funding = funding_open(organization, owner, GROSS)
    stripe_sandbox.checkout_pay(session_id=funding.checkout_session_id, outcome="paid")
    [delivery] = stripe_sandbox.take_deliveries()
    return funding, delivery


# --- A valid event --------------------------------------------------------------------------------


def test_a_valid_event_is_stored_then_processed(client, stripe_sandbox, organization, owner):
    funding, delivery = paid_at_stripe(stripe_sandbox, organization, owner)

    response = deliver(client, delivery)

    assert response.status_code == 200
    assert response.json() == {"detail": "Processed", "event": delivery.event_id, "status": "processed"}
    event = StripeEvent.objects.get()
    assert (event.event_id, event.endpoint, event.type, event.account, event.livemode) == (
        delivery.event_id,
        WebhookEndpoint.PLATFORM,
        "checkout.session.completed",
        "",
        False,
    )
    assert (event.status, event.attempts, event.error) == (StripeEventStatus.PROCESSED, 1, "")
    assert event.processed_at is not None
    assert event.payload == json.loads(delivery.payload)
    assert int(event.stripe_created.timestamp()) == event.payload["created"]
    funding.refresh_from_db()
    assert funding.status == FundingStatus.PAID
    assert ledger.balance(ledger.org_funds(organization.pk, "usd")) == GROSS
    assert ledger.ledger_check().ok


def test_only_post_is_allowed(client):
    assert client.get(endpoint_url(connect=False)).status_code == 405
    assert client.get(endpoint_url(connect=True)).status_code == 405
    assert StripeEvent.objects.count() == 0


# --- Refused deliveries: 400 and nothing stored ---------------------------------------------------


def test_a_forged_signature_is_refused_and_nothing_is_stored(client, stripe_sandbox, organization, owner):
    funding, delivery = paid_at_stripe(stripe_sandbox, organization, owner)
    forged = delivery.payload.replace(b'"amount_total": 10000', b'"amount_total": 99999')
    assert forged != delivery.payload

    response = client.post(
        endpoint_url(connect=False),
        data=forged,
        content_type="application/json",
        headers={"Stripe-Signature": delivery.headers["Stripe-Signature"]},
    )

    assert response.status_code == 400
    assert response.json() == {"detail": "Invalid signature or payload."}
    nothing_stored(organization)
    funding.refresh_from_db()
    assert funding.status == FundingStatus.OPEN
    # The genuine delivery still works: the refusal left nothing behind.
    assert deliver(client, delivery).status_code == 200
    assert ledger.balance(ledger.org_funds(organization.pk, "usd")) == GROSS
    assert ledger.ledger_check().ok


def test_an_event_signed_with_another_secret_is_refused(client, stripe_sandbox, organization, owner):
    _funding, delivery = paid_at_stripe(stripe_sandbox, organization, owner)

    assert post_signed(client, delivery.payload, secret="whsec_not_ours").status_code == 400

    nothing_stored(organization)


def test_each_endpoint_accepts_only_its_own_secret(client, stripe_sandbox, organization, owner):
    _funding, delivery = paid_at_stripe(stripe_sandbox, organization, owner)

    # A platform event (signed with the platform secret) sent to the Connect endpoint...
    response = client.post(
        endpoint_url(connect=True),
        data=delivery.payload,
        content_type="application/json",
        headers={"Stripe-Signature": delivery.headers["Stripe-Signature"]},
    )
    assert response.status_code == 400
    # ...and a Connect-signed event sent to the platform endpoint.
    connect_signed = event_of("account.updated", {"id": "acct_test_1", "object": "account"}, account="acct_test_1")
    payload = json.dumps(connect_signed).encode()
    assert post_signed(client, payload, secret=settings.STRIPE_CONNECT_WEBHOOK_SECRET).status_code == 400

    nothing_stored(organization)


@pytest.mark.parametrize(("age_seconds", "status"), [(301, 400), (299, 200)])
def test_signatures_older_than_the_tolerance_are_refused(client, stripe_sandbox, organization, age_seconds, status):
    payload = json.dumps(event_of("customer.created")).encode()

    response = post_signed(client, payload, timestamp=int(time.time()) - age_seconds)

    assert response.status_code == status
    assert StripeEvent.objects.count() == (1 if status == 200 else 0)
    assert LedgerTransaction.objects.count() == 0
    assert ledger.ledger_check().ok


@pytest.mark.parametrize(
    "headers",
    [{}, {"Stripe-Signature": ""}, {"Stripe-Signature": "t=notatime,v1=abc"}, {"Stripe-Signature": "v1=abc"}],
    ids=["missing", "empty", "bad-timestamp", "no-timestamp"],
)
def test_a_missing_or_malformed_signature_header_is_refused(client, stripe_sandbox, organization, headers):
    payload = json.dumps(event_of("customer.created")).encode()

    response = client.post(endpoint_url(connect=False), data=payload, content_type="application/json", headers=headers)

    assert response.status_code == 400
    nothing_stored(organization)


@pytest.mark.parametrize(
    "payload",
    [b"{not json", b"", b"[]", b'{"hello": "world"}', b'{"id": "evt_1", "type": "x", "created": 1}', b"\xff\xfe"],
    ids=["invalid-json", "empty", "list", "not-an-event", "no-data-object", "not-utf8"],
)
def test_a_signed_body_that_is_not_an_event_is_refused(client, stripe_sandbox, organization, payload):
    # Signed over the raw bytes (the sandbox's signer takes bytes, so even non-UTF-8 is signed).
    signature = sandbox_signature(payload=payload, secret=settings.STRIPE_WEBHOOK_SECRET)

    response = client.post(
        endpoint_url(connect=False),
        data=payload,
        content_type="application/json",
        headers={"Stripe-Signature": signature},
    )

    assert response.status_code == 400
    nothing_stored(organization)


def test_webhook_receive_refuses_an_unknown_endpoint(stripe_sandbox):
    with pytest.raises(ValueError, match="Unknown webhook endpoint"):
        webhook_receive(payload=b"{}", sig_header="t=1,v1=x", endpoint="elsewhere")


# --- Duplicates and order -------------------------------------------------------------------------


def test_a_duplicate_delivery_is_stored_once_and_posts_once(client, stripe_sandbox, organization, owner):
    funding, delivery = paid_at_stripe(stripe_sandbox, organization, owner)

    first, second = deliver(client, delivery), deliver(client, delivery)

    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json()["status"] == StripeEventStatus.PROCESSED
    event = StripeEvent.objects.get()
    assert (event.status, event.attempts) == (StripeEventStatus.PROCESSED, 1)
    assert list(LedgerTransaction.objects.values_list("reference", flat=True)) == [f"funding:{funding.pk}"]
    assert ledger.balance(ledger.org_funds(organization.pk, "usd")) == GROSS
    assert ledger.balance(ledger.stripe_balance("usd")) == NET == stripe_platform_balance(stripe_sandbox)
    assert ledger.ledger_check().ok


def test_a_refund_arriving_before_the_payment_waits_then_applies(client, stripe_sandbox, organization, owner):
    funding = funding_open(organization, owner, GROSS)
    stripe_sandbox.checkout_pay(session_id=funding.checkout_session_id, outcome="paid")
    charge_id = stripe_api.checkout_session_retrieve(session_id=funding.checkout_session_id)["payment_intent"]
    charge_id = stripe_api.payment_intent_retrieve(payment_intent_id=charge_id)["latest_charge"]["id"]
    refund = refund_create(stripe_sandbox, charge_id=charge_id, amount=2_500)
    completed, refunded = stripe_sandbox.take_deliveries()
    assert (completed.event_type, refunded.event_type) == ("checkout.session.completed", "charge.refunded")

    response = deliver(client, refunded)

    assert response.status_code == 200
    assert response.json()["status"] == StripeEventStatus.DEFERRED
    waiting = StripeEvent.objects.get(type="charge.refunded")
    assert (waiting.status, waiting.attempts, waiting.error, waiting.processed_at) == (
        StripeEventStatus.DEFERRED,
        1,
        f"No credited top-up for charge {charge_id} yet.",
        None,
    )
    assert LedgerTransaction.objects.count() == 0

    # The payment arrives; once it is credited the waiting refund is applied.
    assert deliver(client, completed).status_code == 200

    waiting.refresh_from_db()
    assert (waiting.status, waiting.attempts, waiting.error) == (StripeEventStatus.PROCESSED, 2, "")
    funding.refresh_from_db()
    assert (funding.status, funding.refunded_cents) == (FundingStatus.PAID, 2_500)
    assert LedgerTransaction.objects.filter(reference=f"refund:{refund['id']}").count() == 1
    assert ledger.balance(ledger.org_funds(organization.pk, "usd")) == GROSS - 2_500
    assert ledger.balance(ledger.stripe_balance("usd")) == NET - 2_500 == stripe_platform_balance(stripe_sandbox)
    assert ledger.ledger_check().ok

    # Stripe's own retry of the refund event, later, changes nothing.
    assert deliver(client, refunded).json()["status"] == StripeEventStatus.PROCESSED
    assert ledger.balance(ledger.org_funds(organization.pk, "usd")) == GROSS - 2_500
    assert ledger.ledger_check().ok


# --- Types we do not handle -----------------------------------------------------------------------


def test_an_unknown_event_type_is_recorded_as_ignored(client, stripe_sandbox):
    event = event_of("customer.created")

    response = post_signed(client, json.dumps(event).encode())

    assert response.status_code == 200
    assert response.json() == {"detail": "Ignored (type not handled)", "event": event["id"], "status": "ignored"}
    stored = StripeEvent.objects.get()
    assert (stored.type, stored.endpoint, stored.status, stored.attempts, stored.error) == (
        "customer.created",
        WebhookEndpoint.PLATFORM,
        StripeEventStatus.IGNORED,
        1,
        "",
    )
    assert stored.processed_at is not None
    assert LedgerTransaction.objects.count() == 0
    assert ledger.ledger_check().ok


def test_a_connect_event_is_verified_with_the_connect_secret(client, stripe_sandbox):
    event = event_of("customer.created", account="acct_test_42")

    response = post_signed(client, json.dumps(event).encode(), connect=True)

    assert response.status_code == 200
    stored = StripeEvent.objects.get()
    assert (stored.endpoint, stored.account, stored.status) == (
        WebhookEndpoint.CONNECT,
        "acct_test_42",
        StripeEventStatus.IGNORED,
    )
    assert ledger.ledger_check().ok


# --- Failures and retries -------------------------------------------------------------------------


def test_a_failing_handler_answers_500_records_the_error_and_is_retried(client, stripe_sandbox, organization, owner):
    funding, delivery = paid_at_stripe(stripe_sandbox, organization, owner)
    # Stripe fails while the handler asks it for the charge's fee.
    stripe_sandbox.fault(method="GET", path_prefix="/v1/payment_intents", kind="500")

    response = deliver(client, delivery)

    assert response.status_code == 500
    event = StripeEvent.objects.get()
    assert (event.status, event.attempts, event.processed_at) == (StripeEventStatus.FAILED, 1, None)
    assert event.error.startswith("StripeRecoverableError: ")
    funding.refresh_from_db()
    assert funding.status == FundingStatus.OPEN
    assert LedgerTransaction.objects.count() == 0
    assert ledger.ledger_check().ok

    assert events_retry_pending() == 1

    event.refresh_from_db()
    assert (event.status, event.attempts, event.error) == (StripeEventStatus.PROCESSED, 2, "")
    assert event.processed_at is not None
    funding.refresh_from_db()
    assert funding.status == FundingStatus.PAID
    assert ledger.balance(ledger.org_funds(organization.pk, "usd")) == GROSS
    assert events_retry_pending() == 0  # nothing left
    assert ledger.ledger_check().ok


def test_stripes_redelivery_of_a_failed_event_handles_it_again(client, stripe_sandbox, organization, owner):
    _funding, delivery = paid_at_stripe(stripe_sandbox, organization, owner)
    stripe_sandbox.fault(method="GET", path_prefix="/v1/payment_intents", kind="500")
    assert deliver(client, delivery).status_code == 500

    response = deliver(client, delivery)

    assert response.status_code == 200
    event = StripeEvent.objects.get()
    assert (event.status, event.attempts) == (StripeEventStatus.PROCESSED, 2)
    assert ledger.balance(ledger.org_funds(organization.pk, "usd")) == GROSS
    assert ledger.ledger_check().ok


@pytest.fixture
def exploding_handler(monkeypatch, organization):
    """A handler (registered for `test.explode`) that posts to the ledger, then fails."""
    calls: list[str] = []

    def handler(event: StripeEvent, obj: dict[str, Any]) -> None:
        calls.append(event.event_id)
        ledger.ledger_post(
            postings=[
                ledger.move(
                    reference=f"test:{event.event_id}:{len(calls)}",
                    kind="test",
                    amount_cents=100,
                    debit=ledger.stripe_balance("usd"),
                    credit=ledger.org_funds(organization.pk, "usd"),
                )
            ]
        )
        raise RuntimeError("boom after posting")

    monkeypatch.setitem(HANDLERS, (WebhookEndpoint.PLATFORM, "test.explode"), handler)
    return calls


def test_a_failed_handlers_writes_are_undone(client, stripe_sandbox, organization, exploding_handler):
    event = event_of("test.explode")

    response = post_signed(client, json.dumps(event).encode())

    assert response.status_code == 500
    assert response.json() == {
        "detail": "The event could not be handled; it is recorded and will be retried.",
        "event": event["id"],
        "status": "failed",
    }
    assert exploding_handler == [event["id"]]
    stored = StripeEvent.objects.get()
    assert (stored.status, stored.attempts, stored.error) == (
        StripeEventStatus.FAILED,
        1,
        "RuntimeError: boom after posting",
    )
    assert LedgerTransaction.objects.count() == 0
    assert ledger.balance(ledger.org_funds(organization.pk, "usd")) == 0
    assert ledger.ledger_check().ok


def test_retries_stop_at_the_attempt_cap_and_after_the_window(client, stripe_sandbox, organization, exploding_handler):
    capped, old = event_of("test.explode"), event_of("test.explode")
    assert post_signed(client, json.dumps(capped).encode()).status_code == 500
    assert post_signed(client, json.dumps(old).encode()).status_code == 500
    StripeEvent.objects.filter(event_id=capped["id"]).update(attempts=EVENT_MAX_ATTEMPTS)
    StripeEvent.objects.filter(event_id=old["id"]).update(
        received_at=timezone.now() - EVENT_RETRY_WINDOW - timedelta(minutes=1)
    )

    assert events_retry_pending() == 0

    assert dict(StripeEvent.objects.values_list("event_id", "attempts")) == {
        capped["id"]: EVENT_MAX_ATTEMPTS,
        old["id"]: 1,
    }
    assert exploding_handler == [capped["id"], old["id"]]  # neither was run again
    assert LedgerTransaction.objects.count() == 0
    assert ledger.ledger_check().ok


def test_an_event_left_received_by_a_crash_is_handled_by_the_retry_job(stripe_sandbox):
    event = event_of("customer.created")
    # Stored, then the process died before handling it.
    StripeEvent.objects.create(
        event_id=event["id"],
        endpoint=WebhookEndpoint.PLATFORM,
        type=event["type"],
        stripe_created=timezone.now(),
        payload=event,
    )

    assert events_retry_pending() == 0  # it may still be in the hands of the request that stored it
    assert events_retry_pending(now=timezone.now() + timedelta(minutes=6)) == 1

    stored = StripeEvent.objects.get()
    assert (stored.status, stored.attempts) == (StripeEventStatus.IGNORED, 1)
    assert ledger.ledger_check().ok


def test_the_retry_task_runs_every_five_minutes(client, stripe_sandbox, organization, owner):
    assert settings.CELERY_BEAT_SCHEDULE["payments-stripe-events-retry"] == {
        "task": "payments.tasks.stripe_events_retry",
        "schedule": 300.0,
    }
    _funding, delivery = paid_at_stripe(stripe_sandbox, organization, owner)
    stripe_sandbox.fault(method="GET", path_prefix="/v1/payment_intents", kind="500")
    assert deliver(client, delivery).status_code == 500

    assert stripe_events_retry.delay().result == 1

    assert StripeEvent.objects.get().status == StripeEventStatus.PROCESSED
    assert ledger.balance(ledger.org_funds(organization.pk, "usd")) == GROSS
    assert ledger.ledger_check().ok


# --- Events fetched from the API ------------------------------------------------------------------


def test_events_sync_processes_events_the_webhooks_missed(client, stripe_sandbox, organization, owner):
    funding, delivery = paid_at_stripe(stripe_sandbox, organization, owner)

    assert events_sync() == 1

    funding.refresh_from_db()
    assert funding.status == FundingStatus.PAID
    event = StripeEvent.objects.get()
    assert (event.event_id, event.endpoint, event.status) == (
        delivery.event_id,
        WebhookEndpoint.PLATFORM,
        StripeEventStatus.PROCESSED,
    )
    assert events_sync() == 0
    assert stripe_events_sync.delay().result == 0
    # The webhook arriving late is a duplicate.
    assert deliver(client, delivery).status_code == 200
    assert StripeEvent.objects.count() == 1
    assert LedgerTransaction.objects.filter(kind="funding").count() == 1
    assert ledger.balance(ledger.org_funds(organization.pk, "usd")) == GROSS
    assert ledger.ledger_check().ok


def test_event_process_stores_and_handles_an_event_from_the_api(stripe_sandbox, organization, owner):
    funding, delivery = paid_at_stripe(stripe_sandbox, organization, owner)
    [event] = stripe_api.events_list(types=["checkout.session.completed"])

    stored = event_process(event=event, endpoint=WebhookEndpoint.PLATFORM)
    again = event_process(event=event, endpoint=WebhookEndpoint.PLATFORM)

    assert stored.event_id == delivery.event_id
    assert (again.pk, again.status, again.attempts) == (stored.pk, StripeEventStatus.PROCESSED, 1)
    funding.refresh_from_db()
    assert funding.status == FundingStatus.PAID
    assert ledger.balance(ledger.org_funds(organization.pk, "usd")) == GROSS
    assert ledger.ledger_check().ok


def test_a_full_flow_of_deliveries_keeps_the_ledger_equal_to_stripe(client, stripe_sandbox, organization, owner):
    funding = funding_paid(client, stripe_sandbox, organization, owner, GROSS)
    refund_create(stripe_sandbox, charge_id=funding.charge_id, amount=1_000)
    dispute = stripe_sandbox.charge_dispute(charge_id=funding.charge_id, amount=4_000)
    stripe_sandbox.dispute_close(dispute_id=dispute["id"], won=True)
    # Stripe delivers everything twice, newest first.
    deliveries = stripe_sandbox.take_deliveries()
    for delivery in [*reversed(deliveries), *deliveries]:
        assert deliver(client, delivery).status_code == 200
    events_retry_pending()

    assert set(StripeEvent.objects.values_list("status", flat=True)) == {StripeEventStatus.PROCESSED}
    assert ledger.balance(ledger.org_funds(organization.pk, "usd")) == GROSS - 1_000
    assert (
        ledger.balance(ledger.stripe_balance("usd")) == stripe_platform_balance(stripe_sandbox) == NET - 1_000 - 1_500
    )
    assert ledger.balance(ledger.stripe_fees("usd")) == FEE + 1_500
    assert ledger.ledger_check().ok
    deliver_all(client, stripe_sandbox)  # nothing queued


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL: row locks across connections")
def test_the_same_event_delivered_many_times_at_once_is_handled_once(stripe_sandbox, organization, owner):
    funding, delivery = paid_at_stripe(stripe_sandbox, organization, owner)

    def receive() -> int:
        return webhook_receive(
            payload=delivery.payload,
            sig_header=delivery.headers["Stripe-Signature"],
            endpoint=WebhookEndpoint.PLATFORM,
        ).status_code

    assert run_at_once([receive] * 8) == [200] * 8

    event = StripeEvent.objects.get()
    assert (event.status, event.attempts) == (StripeEventStatus.PROCESSED, 1)
    assert list(LedgerTransaction.objects.values_list("reference", flat=True)) == [f"funding:{funding.pk}"]
    assert ledger.balance(ledger.org_funds(organization.pk, "usd")) == GROSS
    assert ledger.ledger_check().ok
