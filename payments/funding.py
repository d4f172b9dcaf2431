"""Client funding: organizations top up their prepaid funds through Stripe Checkout.

Money is credited only from a verified Stripe event (`checkout.session.completed` with
`payment_status=paid`, or `checkout.session.async_payment_succeeded`), never from the redirect
back to our site. The client is credited the full amount they paid; the platform bears Stripe's
fee. Refunds and disputes take the money back out of the organization's funds (the platform also
bears the dispute fee) and may pause its studies; a won dispute puts it back.

Stripe may deliver events twice and in any order. Every posting has a reference derived from a
Stripe id (`funding:<id>`, `refund:<re_…>`, `dispute:<du_…>`), so a repeat posts nothing; an
event about a charge we have not credited yet is deferred and handled again once we have.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from crowdplatform.accounts.models import Organization
from crowdplatform.accounts.principals import Actor, actor_user
from crowdplatform.core.audit import audit_record
from crowdplatform.core.errors import ApplicationError
from payments import ledger, stripe_api
from payments.funds import funds_watch, studies_resume_funded
from payments.models import Funding, FundingStatus, LedgerTransaction
from payments.webhooks import EventDeferred, EventIgnored, events_retry_after_commit, handles

logger = logging.getLogger(__name__)

_CURRENCY = re.compile(r"^[a-z]{3}$")
# Refunds in these states have left (or are leaving) our Stripe balance; failed and canceled ones
# gave the money back.
_REFUND_COUNTED = frozenset({"succeeded", "pending", "requires_action"})


# --- Opening a checkout ---------------------------------------------------------------------------


def funding_checkout_create(
    *, organization: Organization, actor: Actor, amount_cents: object, currency: str = "usd"
) -> Funding:
    """Open a Stripe Checkout Session for a top-up of `amount_cents`; the client pays on Stripe's
    page (`Funding.checkout_url`). Nothing is credited here.

    The caller checks that `actor` may fund the organization (`organization_for(..., manage=True)`).
    Call it outside a transaction: the Funding row is committed before Stripe is asked, so the
    idempotency key `funding-<id>` is stable and a Stripe failure is recorded on it.
    """
    amount = _funding_amount(amount_cents)
    currency = _funding_currency(currency)
    with transaction.atomic():
        funding = Funding.objects.create(
            organization=organization, amount_cents=amount, currency=currency, created_by=actor_user(actor)
        )
        audit_record(
            actor=actor, action="funding.create", target=funding, data={"amount_cents": amount, "currency": currency}
        )
    try:
        session = stripe_api.checkout_session_create(
            amount=amount,
            currency=currency,
            product_name=f"Prepaid evaluation funds for {organization.name}",
            client_reference_id=str(funding.pk),
            metadata={"funding_id": str(funding.pk), "organization_id": str(organization.pk)},
            success_url=_return_url(organization, funding, "success"),
            cancel_url=_return_url(organization, funding, "cancel"),
            idempotency_key=f"funding-{funding.pk}",
            customer_email=getattr(actor_user(actor), "email", None) or None,
        )
    except stripe_api.StripeError as exc:
        _checkout_failed(funding, actor, exc)
        raise ApplicationError(
            "Stripe could not open a payment page right now, and nothing was charged. Please try again in a moment.",
            code="payment_provider_error",
        ) from exc
    with transaction.atomic():
        funding = Funding.objects.select_for_update().get(pk=funding.pk)
        funding.checkout_session_id = session["id"]
        funding.checkout_url = session.get("url") or ""
        funding.save(update_fields=["checkout_session_id", "checkout_url"])
        audit_record(actor=actor, action="funding.checkout_open", target=funding, data={"session": session["id"]})
    return funding


def billing_path(organization: Organization) -> str:
    """The organization's billing page, where Checkout sends the client back."""
    try:
        return reverse("payments:billing", args=[organization.slug])
    except NoReverseMatch:  # the page is added with the money pages; its address is agreed
        return f"/client/orgs/{organization.slug}/billing/"


def _funding_amount(value: object) -> int:
    amount = ledger.amount_validated(value, name="amount_cents")
    low, high = settings.FUNDING_MIN_CENTS, settings.FUNDING_MAX_CENTS
    if amount < low:
        message = f"The smallest top-up is {_money(low)}."
        raise ApplicationError(message, code="invalid_amount", fields={"amount_cents": [message]})
    if amount > high:
        message = f"The largest top-up is {_money(high)}; for more, make several or contact us."
        raise ApplicationError(message, code="invalid_amount", fields={"amount_cents": [message]})
    return amount


def _funding_currency(value: object) -> str:
    currency = value.lower() if isinstance(value, str) else ""
    if not _CURRENCY.match(currency):
        message = "The currency must be a three-letter ISO code such as usd."
        raise ApplicationError(message, code="invalid_currency", fields={"currency": [message]})
    return currency


def _money(cents: int, currency: str = "usd") -> str:
    return f"{cents / 100:,.2f} {currency.upper()}"


def _return_url(organization: Organization, funding: Funding, result: str) -> str:
    return f"{settings.SITE_URL}{billing_path(organization)}?funding={funding.pk}&result={result}"


def _checkout_failed(funding: Funding, actor: Actor, exc: stripe_api.StripeError) -> None:
    logger.warning("Checkout for funding %s failed: %s", funding.pk, exc)
    with transaction.atomic():
        funding = Funding.objects.select_for_update().get(pk=funding.pk)
        if funding.status != FundingStatus.OPEN:
            return
        funding.status = FundingStatus.FAILED
        funding.failure_reason = f"Stripe could not open the checkout: {exc}"[:255]
        funding.save(update_fields=["status", "failure_reason"])
        audit_record(actor=actor, action="funding.checkout_failed", target=funding, data={"error": str(exc)[:500]})


# --- Crediting a payment --------------------------------------------------------------------------


def funding_credit(*, funding: Funding, payment_intent_id: str, amount_cents: int, currency: str) -> Funding:
    """Credit a paid top-up: Stripe told us (in a verified event) that `payment_intent_id` paid
    `amount_cents`. One posting `funding:<id>`: the gross to the organization's funds, Stripe's
    fee to the platform's Stripe fees and the rest to the Stripe balance. Idempotent.

    An amount or currency other than the Funding's is never credited: the Funding is marked
    failed with the reason, for staff.
    """
    funding = Funding.objects.get(pk=funding.pk)
    if funding.status == FundingStatus.PAID:
        return funding
    if amount_cents != funding.amount_cents or currency != funding.currency:
        return _mismatch(funding, f"the checkout reported {amount_cents} {currency}")
    if not payment_intent_id:
        raise ValueError(f"The paid Checkout Session of funding {funding.pk} names no PaymentIntent.")
    # Stripe's fee is on the charge's balance transaction; asked before the Funding row is locked.
    intent = stripe_api.payment_intent_retrieve(payment_intent_id=payment_intent_id)
    charge = intent["latest_charge"]
    txn = charge["balance_transaction"]
    gross, fee = int(txn["amount"]), int(txn["fee"])
    if int(intent["amount_received"]) != funding.amount_cents or gross != funding.amount_cents:
        return _mismatch(funding, f"the payment received {intent['amount_received']} {intent['currency']}")
    if txn["currency"] != funding.currency:
        return _mismatch(funding, f"the payment settled in {txn['currency']}")
    with transaction.atomic():
        funding = Funding.objects.select_for_update().get(pk=funding.pk)
        if funding.status == FundingStatus.PAID:
            return funding
        lines = [
            ledger.Line(ledger.stripe_balance(funding.currency), gross - fee),
            ledger.Line(ledger.org_funds(funding.organization_id, funding.currency), -gross),
        ]
        if fee:
            lines.append(ledger.Line(ledger.stripe_fees(funding.currency), fee))
        ledger.ledger_post(
            postings=[
                ledger.Posting(
                    reference=f"funding:{funding.pk}",
                    kind="funding",
                    lines=tuple(lines),
                    memo=f"Top-up paid through Stripe ({charge['id']})",
                    organization_id=funding.organization_id,
                )
            ]
        )
        funding.status = FundingStatus.PAID
        funding.paid_at = timezone.now()
        funding.payment_intent_id = payment_intent_id
        funding.charge_id = charge["id"]
        funding.fee_cents = fee
        funding.failure_reason = ""
        funding.save(
            update_fields=["status", "paid_at", "payment_intent_id", "charge_id", "fee_cents", "failure_reason"]
        )
        audit_record(
            actor=None,
            action="funding.paid",
            target=funding,
            data={"amount_cents": gross, "fee_cents": fee, "charge": charge["id"]},
        )
        organization_id = funding.organization_id
        transaction.on_commit(lambda: studies_resume_funded(organization_id=organization_id), robust=True)
        # A refund or dispute of this charge may have arrived first and be waiting.
        events_retry_after_commit()
    return funding


def _mismatch(funding: Funding, what: str) -> Funding:
    reason = f"Not credited: {what}, but this top-up is {funding.amount_cents} {funding.currency}. Staff must review."
    logger.error("Funding %s: %s", funding.pk, reason)
    with transaction.atomic():
        funding = Funding.objects.select_for_update().get(pk=funding.pk)
        if funding.status == FundingStatus.PAID:
            return funding
        funding.status = FundingStatus.FAILED
        funding.failure_reason = reason[:255]
        funding.save(update_fields=["status", "failure_reason"])
        audit_record(actor=None, action="funding.amount_mismatch", target=funding, data={"detail": reason})
    return funding


# --- Checkout events ------------------------------------------------------------------------------


@handles("checkout.session.completed")
def on_checkout_completed(event: Any, session: dict[str, Any]) -> None:
    funding = _funding_for_session(session)
    payment_status = session.get("payment_status")
    if payment_status == "paid":
        _credit_from_session(funding, session)
    elif payment_status == "unpaid":
        _processing(funding)  # a delayed method (bank debit): the outcome comes in a later event
    else:
        raise EventIgnored(f"Checkout Session payment_status {payment_status!r} moves no money.")


@handles("checkout.session.async_payment_succeeded")
def on_async_payment_succeeded(event: Any, session: dict[str, Any]) -> None:
    _credit_from_session(_funding_for_session(session), session)


@handles("checkout.session.async_payment_failed")
def on_async_payment_failed(event: Any, session: dict[str, Any]) -> None:
    funding = _funding_for_session(session)
    reason = _payment_error(_stripe_id(session.get("payment_intent")))
    with transaction.atomic():
        funding = Funding.objects.select_for_update().get(pk=funding.pk)
        if funding.status == FundingStatus.PAID:
            raise EventIgnored(f"Funding {funding.pk} is already paid.")
        funding.status = FundingStatus.FAILED
        funding.failure_reason = reason[:255]
        funding.save(update_fields=["status", "failure_reason"])
        audit_record(actor=None, action="funding.failed", target=funding, data={"reason": reason})


def _credit_from_session(funding: Funding, session: dict[str, Any]) -> None:
    funding_credit(
        funding=funding,
        payment_intent_id=_stripe_id(session.get("payment_intent")),
        amount_cents=session.get("amount_total"),
        currency=session.get("currency"),
    )


def _funding_for_session(session: dict[str, Any]) -> Funding:
    """Our Funding for this Checkout Session: by session id, else by the funding id we put on the
    session (the session id may not have been saved if we crashed right after creating it)."""
    session_id = session.get("id") or ""
    funding = Funding.objects.filter(checkout_session_id=session_id).first()
    if funding is not None:
        return funding
    reference = str(session.get("client_reference_id") or (session.get("metadata") or {}).get("funding_id") or "")
    organization_id = str((session.get("metadata") or {}).get("organization_id") or "")
    if reference.isdigit():
        funding = Funding.objects.filter(pk=int(reference), checkout_session_id__isnull=True).first()
        if funding is not None and organization_id in ("", str(funding.organization_id)):
            Funding.objects.filter(pk=funding.pk, checkout_session_id__isnull=True).update(
                checkout_session_id=session_id
            )
            return funding
    raise EventIgnored(f"Checkout Session {session_id} was not opened by this platform.")


def _processing(funding: Funding) -> None:
    with transaction.atomic():
        if Funding.objects.filter(pk=funding.pk, status=FundingStatus.OPEN).update(status=FundingStatus.PROCESSING):
            audit_record(actor=None, action="funding.processing", target=funding)


def _payment_error(payment_intent_id: str) -> str:
    """Stripe's words for why a delayed payment failed, if it can tell us."""
    fallback = "The payment failed."
    if not payment_intent_id:
        return fallback
    try:
        intent = stripe_api.payment_intent_retrieve(payment_intent_id=payment_intent_id)
    except stripe_api.StripeError:
        return fallback
    error = intent.get("last_payment_error") or {}
    return str(error.get("message") or fallback)


# --- Refunds and disputes -------------------------------------------------------------------------


@handles("charge.refunded")
def on_charge_refunded(event: Any, charge: dict[str, Any]) -> None:
    funding = _funding_for_charge(charge.get("id"), charge.get("payment_intent"))
    _same_currency(funding, charge.get("currency"))
    with transaction.atomic():
        funding = Funding.objects.select_for_update().get(pk=funding.pk)
        refunds = _refunds(charge, funding)  # under the lock: the fallback reads refunded_cents
        postings = [
            ledger.move(
                reference=reference,
                kind="refund",
                amount_cents=amount,
                debit=ledger.org_funds(funding.organization_id, funding.currency),
                credit=ledger.stripe_balance(funding.currency),
                memo=f"Refund of top-up {funding.pk} ({refund_id})",
                organization_id=funding.organization_id,
            )
            for reference, refund_id, amount in refunds
        ]
        posted = ledger.ledger_post(postings=postings) if postings else None
        added = [
            (refund_id, amount)
            for (_reference, refund_id, amount), created in zip(refunds, posted.created if posted else [], strict=True)
            if created
        ]
        if not added:
            return
        funding.refunded_cents += sum(amount for _refund_id, amount in added)
        funding.save(update_fields=["refunded_cents"])
        audit_record(
            actor=None,
            action="funding.refund",
            target=funding,
            data={"refunds": [refund_id for refund_id, _amount in added], "refunded_cents": funding.refunded_cents},
        )
        funds_watch(organization_id=funding.organization_id)


@handles("charge.dispute.created")
def on_dispute_created(event: Any, dispute: dict[str, Any]) -> None:
    if str(dispute.get("status") or "").startswith("warning_"):
        raise EventIgnored("An inquiry, not a chargeback: no money was withdrawn.")
    funding = _funding_for_charge(dispute.get("charge"), dispute.get("payment_intent"))
    _same_currency(funding, dispute.get("currency"))
    dispute_id, amount = dispute["id"], ledger.amount_validated(dispute.get("amount"), name="dispute amount")
    fee = _dispute_fee(dispute)
    with transaction.atomic():
        funding = Funding.objects.select_for_update().get(pk=funding.pk)
        postings = [
            ledger.move(
                reference=f"dispute:{dispute_id}",
                kind="dispute",
                amount_cents=amount,
                debit=ledger.org_funds(funding.organization_id, funding.currency),
                credit=ledger.stripe_balance(funding.currency),
                memo=f"Chargeback on top-up {funding.pk} ({dispute_id})",
                organization_id=funding.organization_id,
            )
        ]
        if fee:
            postings.append(
                ledger.move(
                    reference=f"dispute:{dispute_id}:fee",
                    kind="dispute_fee",
                    amount_cents=fee,
                    debit=ledger.stripe_fees(funding.currency),
                    credit=ledger.stripe_balance(funding.currency),
                    memo=f"Stripe's dispute fee ({dispute_id})",
                    organization_id=funding.organization_id,
                )
            )
        posted = ledger.ledger_post(postings=postings)
        if not posted.created[0]:
            return
        funding.disputed_cents += amount
        funding.save(update_fields=["disputed_cents"])
        audit_record(
            actor=None,
            action="funding.dispute",
            target=funding,
            data={"dispute": dispute_id, "amount_cents": amount, "fee_cents": fee},
        )
        funds_watch(organization_id=funding.organization_id)


@handles("charge.dispute.closed")
def on_dispute_closed(event: Any, dispute: dict[str, Any]) -> None:
    status = dispute.get("status")
    if status != "won":
        # Lost (the money left when the dispute opened) or an inquiry closed: nothing moves.
        raise EventIgnored(f"Dispute closed as {status}: no money moves.")
    dispute_id = dispute["id"]
    funding = _funding_for_charge(dispute.get("charge"), dispute.get("payment_intent"))
    opened = LedgerTransaction.objects.filter(reference=f"dispute:{dispute_id}").first()
    if opened is None:
        raise EventDeferred(f"Dispute {dispute_id} was won before we recorded it being opened.")
    amount = opened.entries.filter(amount_cents__gt=0).values_list("amount_cents", flat=True).get()
    with transaction.atomic():
        funding = Funding.objects.select_for_update().get(pk=funding.pk)
        posted = ledger.ledger_post(
            postings=[
                ledger.move(
                    reference=f"dispute:{dispute_id}:won",
                    kind="dispute_won",
                    amount_cents=amount,
                    debit=ledger.stripe_balance(funding.currency),
                    credit=ledger.org_funds(funding.organization_id, funding.currency),
                    memo=f"Chargeback won: funds returned ({dispute_id})",
                    organization_id=funding.organization_id,
                )
            ]
        )
        if not posted.created[0]:
            return
        funding.disputed_cents -= amount
        funding.save(update_fields=["disputed_cents"])
        audit_record(
            actor=None,
            action="funding.dispute_won",
            target=funding,
            data={"dispute": dispute_id, "amount_cents": amount},
        )
        organization_id = funding.organization_id
        transaction.on_commit(lambda: studies_resume_funded(organization_id=organization_id), robust=True)


def _funding_for_charge(charge: object, payment_intent: object) -> Funding:
    """The paid Funding of a charge; deferred when we have not credited it yet (its checkout
    event may still be on its way)."""
    charge_id, intent_id = _stripe_id(charge), _stripe_id(payment_intent)
    match = Q(charge_id=charge_id) if charge_id else Q(pk__in=[])
    if intent_id:
        match |= Q(payment_intent_id=intent_id)
    funding = Funding.objects.filter(match, status=FundingStatus.PAID).first()
    if funding is None:
        raise EventDeferred(f"No credited top-up for charge {charge_id or intent_id or '?'} yet.")
    return funding


def _refunds(charge: dict[str, Any], funding: Funding) -> list[tuple[str, str, int]]:
    """(reference, refund id, amount) for each refund of the charge that took money back.

    The charge's `refunds` list names each refund; without it (newer API versions leave it out of
    events) the cumulative `amount_refunded` is used: the part above what we recorded, under a
    reference naming that cumulative total, so repeats and older snapshots post nothing.
    """
    listed = (charge.get("refunds") or {}).get("data")
    if isinstance(listed, list):
        return [
            (
                f"refund:{refund['id']}",
                refund["id"],
                ledger.amount_validated(refund.get("amount"), name="refund amount"),
            )
            for refund in reversed(listed)  # Stripe lists newest first
            if refund.get("status") in _REFUND_COUNTED
        ]
    total = charge.get("amount_refunded")
    if isinstance(total, bool) or not isinstance(total, int) or total <= funding.refunded_cents:
        return []
    return [(f"refund:{charge['id']}:upto:{total}", f"{charge['id']} up to {total}", total - funding.refunded_cents)]


def _dispute_fee(dispute: dict[str, Any]) -> int:
    """Stripe's fee for the dispute, from the withdrawal's balance transaction when the event
    carries it, else the configured standard fee."""
    transactions = dispute.get("balance_transactions")
    if isinstance(transactions, list) and transactions and all(isinstance(txn, dict) for txn in transactions):
        return sum(int(txn.get("fee") or 0) for txn in transactions if int(txn.get("amount") or 0) < 0)
    return settings.STRIPE_DISPUTE_FEE_CENTS


def _same_currency(funding: Funding, currency: object) -> None:
    if currency != funding.currency:
        raise ValueError(f"Funding {funding.pk} is in {funding.currency}, the event in {currency}.")


def _stripe_id(value: object) -> str:
    """An id whether Stripe sent it as a string or as the expanded object."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) else ""
