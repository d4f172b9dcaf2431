"""Rater payouts: batches of Stripe Transfers of each rater's available balance.

A payout goes pending → sent → paid, or pending → failed, and a sent or paid one can be reversed.
Its money is reserved when the batch is created (`payout:<id>:reserve`: the rater's available
balance → payouts in transit), leaves our Stripe balance when Stripe accepts the transfer
(`payout:<id>`), comes back to the rater's available balance if Stripe refuses it
(`payout:<id>:return`) and again if the transfer is reversed (`payout:<id>:reversal`).

Sending is safe to repeat after any interruption:

- the idempotency key (`payout:<batch>:<rater>`) is saved with the payout, before any call, and
  every attempt sends the same one, so Stripe answers a repeat with the transfer it already made;
- each attempt is claimed (attempts + 1, and a lease in `next_attempt_at`) and committed before
  Stripe is called, so two workers never send one payout at once and a crashed attempt is picked
  up again by `payouts_send_due` once its lease runs out;
- a payout attempted before is first looked up by its transfer group (`payout-<id>`), because
  Stripe forgets idempotency keys after 24 hours;
- recording the transfer is one transaction guarded by the payout's status, and the ledger
  reference is unique, so a repeat records nothing twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Q, Subquery
from django.utils import timezone

from crowdplatform.accounts.principals import Actor, actor_user
from crowdplatform.core.audit import audit_record
from crowdplatform.core.errors import ApplicationError, ConflictError
from payments import ledger, stripe_api
from payments.models import (
    AccountKind,
    ConnectedAccount,
    LedgerAccount,
    Payout,
    PayoutBatch,
    PayoutBatchTrigger,
    PayoutHold,
    PayoutStatus,
    StripeEvent,
    WebhookEndpoint,
)
from payments.webhooks import EventDeferred, EventIgnored, handles

if TYPE_CHECKING:
    from crowdplatform.accounts.models import User

logger = logging.getLogger(__name__)

# An attempt owns its payout this long (it covers the SDK's own timeout and network retries); a
# worker that died mid-attempt leaves the payout to `payouts_send_due` after it.
SEND_LEASE = timedelta(minutes=5)
# A new payout is sent by its batch's task; the retry job only takes it if that task seems lost.
ORPHAN_AFTER = timedelta(minutes=5)
# Recoverable errors (Stripe unreachable, 5xx, 429) are retried 1, 2, 4, ... minutes later, at
# most an hour apart; after this many attempts (about four hours) the payout waits for staff.
MAX_ATTEMPTS = 10
BACKOFF_CAP = timedelta(hours=1)
# How many payouts one run of the retry job takes on (the next run, a minute later, continues).
SEND_DUE_LIMIT = 1000


def transfer_group(payout_id: int) -> str:
    return f"payout-{payout_id}"


# --- Holds ----------------------------------------------------------------------------------------


def payout_hold(*, rater: User, reason: str, actor: Actor) -> PayoutHold:
    """Stop the rater's payouts until released (their earnings keep accruing). A payout of theirs
    that is waiting to be sent and was never attempted is cancelled and its money made available
    again; one already attempted may have reached Stripe, so it runs its course."""
    reason = (reason or "").strip()
    if not reason:
        raise ApplicationError(
            "Say why the payouts are held.", code="reason_required", fields={"reason": ["Required."]}
        )
    with transaction.atomic():
        try:
            with transaction.atomic():
                hold = PayoutHold.objects.create(rater=rater, reason=reason, created_by=actor_user(actor))
        except IntegrityError:
            raise ConflictError("This rater's payouts are already held.", code="already_held") from None
        cancelled = _unsent_payouts_cancel(rater_id=rater.pk)
        audit_record(
            actor=actor,
            action="payout.hold",
            target=hold,
            data={"rater_id": rater.pk, "reason": reason, "cancelled_payouts": cancelled},
        )
    return hold


def payout_hold_release(*, hold: PayoutHold, note: str, actor: Actor) -> PayoutHold:
    """Release a hold: the rater is paid again from the next batch."""
    note = (note or "").strip()
    if not note:
        raise ApplicationError("Say why the hold is released.", code="note_required", fields={"note": ["Required."]})
    with transaction.atomic():
        hold = PayoutHold.objects.select_for_update().get(pk=hold.pk)
        if hold.released_at is not None:
            raise ConflictError("This hold was already released.", code="already_released")
        hold.released_at = timezone.now()
        hold.released_by = actor_user(actor)
        hold.release_note = note
        hold.save(update_fields=["released_at", "released_by", "release_note"])
        audit_record(
            actor=actor, action="payout.hold_release", target=hold, data={"rater_id": hold.rater_id, "note": note}
        )
    return hold


def _unsent_payouts_cancel(*, rater_id: int) -> list[int]:
    cancelled = []
    for payout in Payout.objects.select_for_update().filter(rater_id=rater_id, status=PayoutStatus.PENDING, attempts=0):
        if _payout_fail_and_return(payout, error="Cancelled before sending: payouts held by staff."):
            cancelled.append(payout.pk)
    return cancelled


# --- Who gets paid --------------------------------------------------------------------------------

SKIP_HELD = "held"
SKIP_IN_FLIGHT = "in_flight"
SKIP_NOT_ONBOARDED = "not_onboarded"
SKIP_TRANSFERS_INACTIVE = "transfers_inactive"
SKIP_BELOW_MINIMUM = "below_minimum"


@dataclass(frozen=True)
class PreviewLine:
    """One rater with money available, and what a batch would do for them."""

    rater_id: int
    rater_email: str
    available_cents: int
    amount_cents: int  # what the batch sends: the whole available balance, or 0 when skipped
    skip: str  # "" when paid, else one of the SKIP_* codes
    detail: str  # for staff
    connected_account_id: int | None

    @property
    def will_pay(self) -> bool:
        return not self.skip


@dataclass(frozen=True)
class BatchPreview:
    currency: str
    minimum_cents: int
    lines: list[PreviewLine]

    @property
    def to_pay(self) -> list[PreviewLine]:
        return [line for line in self.lines if line.will_pay]

    @property
    def skipped(self) -> list[PreviewLine]:
        return [line for line in self.lines if not line.will_pay]

    @property
    def payouts_count(self) -> int:
        return len(self.to_pay)

    @property
    def total_cents(self) -> int:
        return sum(line.amount_cents for line in self.to_pay)


def payout_batch_preview(*, currency: str = "usd", minimum_cents: int | None = None) -> BatchPreview:
    """Every rater with an available balance and what the next batch would do for them. One query."""
    minimum = _minimum(minimum_cents)
    return BatchPreview(currency=currency, minimum_cents=minimum, lines=_lines(currency=currency, minimum=minimum))


def _minimum(minimum_cents: int | None) -> int:
    value = settings.PAYOUT_MINIMUM_CENTS if minimum_cents is None else minimum_cents
    return ledger.amount_validated(value, name="minimum_cents")


def _lines(*, currency: str, minimum: int, rater_id: int | None = None) -> list[PreviewLine]:
    """The raters owed money in `currency` (available balance above zero), with everything that
    decides whether they are paid, in one query whatever their number."""
    accounts = LedgerAccount.objects.filter(
        kind=AccountKind.RATER_AVAILABLE, currency=currency, balance_cents__lt=0, rater__isnull=False
    )
    if rater_id is not None:
        accounts = accounts.filter(rater_id=rater_id)
    active_hold = PayoutHold.objects.filter(rater_id=OuterRef("rater_id"), released_at__isnull=True)
    rows = (
        accounts.annotate(
            email=F("rater__email"),
            connected_pk=F("rater__connected_account__id"),
            transfers=F("rater__connected_account__transfers_capability"),
            hold_reason=Subquery(active_hold.values("reason")[:1]),
            in_flight=Exists(Payout.objects.filter(rater_id=OuterRef("rater_id"), status=PayoutStatus.PENDING)),
        )
        .order_by("rater_id")
        .values_list("rater_id", "email", "balance_cents", "connected_pk", "transfers", "hold_reason", "in_flight")
    )
    return [_line(row, minimum=minimum, currency=currency) for row in rows]


def _line(row: tuple[Any, ...], *, minimum: int, currency: str) -> PreviewLine:
    rater_id, email, balance_cents, connected_pk, transfers, hold_reason, in_flight = row
    available = -balance_cents  # a liability: credit-normal
    if hold_reason is not None:
        skip, detail = SKIP_HELD, f"Payouts held by staff: {hold_reason}"
    elif in_flight:
        skip, detail = SKIP_IN_FLIGHT, "A payout is already being sent."
    elif connected_pk is None:
        skip, detail = SKIP_NOT_ONBOARDED, "Has not set up a Stripe account for payouts."
    elif transfers != "active":
        skip, detail = SKIP_TRANSFERS_INACTIVE, f"Stripe cannot send transfers to this account yet ({transfers})."
    elif available < minimum:
        skip, detail = SKIP_BELOW_MINIMUM, f"Below the {_money(minimum, currency)} minimum."
    else:
        skip, detail = "", f"Will be paid {_money(available, currency)}."
    return PreviewLine(
        rater_id=rater_id,
        rater_email=email,
        available_cents=available,
        amount_cents=0 if skip else available,
        skip=skip,
        detail=detail,
        connected_account_id=connected_pk,
    )


def _money(cents: int, currency: str) -> str:
    return f"{cents / 100:,.2f} {currency.upper()}"


# --- Batches --------------------------------------------------------------------------------------


def payout_batch_create(
    *, trigger: str, actor: Actor, currency: str = "usd", minimum_cents: int | None = None
) -> PayoutBatch:
    """One payout per eligible rater (their whole available balance, at least the minimum), its money
    reserved, all in one transaction and a constant number of queries; sending starts on commit.

    Concurrent batches never pay the same money twice: the raters' available accounts are locked
    (in id order, as every posting locks them) before their balances are read, and a rater with a
    payout still pending is skipped (the database also refuses a second pending payout).
    """
    if trigger not in PayoutBatchTrigger.values:
        raise ApplicationError(f"Unknown batch trigger {trigger!r}.", code="invalid_trigger")
    minimum = _minimum(minimum_cents)
    with transaction.atomic():
        locked = _rater_accounts_lock(currency=currency)
        # Read after the lock, so a batch that committed meanwhile is seen (its pending payouts,
        # the balances it reserved).
        lines = [
            line for line in _lines(currency=currency, minimum=minimum) if line.will_pay and line.rater_id in locked
        ]
        batch = PayoutBatch.objects.create(
            trigger=trigger,
            created_by=actor_user(actor),
            currency=currency,
            minimum_cents=minimum,
            payouts_count=len(lines),
            total_cents=sum(line.amount_cents for line in lines),
        )
        _payouts_create(batch=batch, lines=lines)
        audit_record(
            actor=actor,
            action="payout.batch_create",
            target=batch,
            data={
                "trigger": trigger,
                "currency": currency,
                "minimum_cents": minimum,
                "payouts": batch.payouts_count,
                "total_cents": batch.total_cents,
            },
        )
        if lines:
            batch_id = batch.pk
            transaction.on_commit(lambda: _enqueue_batch_send(batch_id))
    return batch


def _rater_accounts_lock(*, currency: str) -> set[int]:
    """Lock the available accounts of the raters owed money (and the payouts-in-transit account)
    in id order, the order `ledger_post` locks in, so batches and postings never deadlock.
    Returns the raters locked: only they can be paid by this batch."""
    locked = (
        LedgerAccount.objects.select_for_update()
        .filter(
            Q(kind=AccountKind.RATER_AVAILABLE, currency=currency, balance_cents__lt=0, rater__isnull=False)
            | Q(key=ledger.payouts_in_transit(currency).key)
        )
        .order_by("id")
        .values_list("rater_id", flat=True)
    )
    return {rater_id for rater_id in locked if rater_id is not None}


def _payouts_create(*, batch: PayoutBatch, lines: list[PreviewLine]) -> list[Payout]:
    """The payouts of `lines` with their idempotency keys, and their reservations in one posting call."""
    if not lines:
        return []
    payouts = Payout.objects.bulk_create(
        [
            Payout(
                batch=batch,
                rater_id=line.rater_id,
                connected_account_id=line.connected_account_id,
                amount_cents=line.amount_cents,
                currency=batch.currency,
                # Known before the payout is even saved, so it can never be missing at send time.
                idempotency_key=f"payout:{batch.pk}:{line.rater_id}",
            )
            for line in lines
        ]
    )
    ledger.ledger_post(
        postings=[
            ledger.move(
                reference=f"payout:{payout.pk}:reserve",
                kind="payout_reserve",
                amount_cents=payout.amount_cents,
                debit=ledger.rater_available(payout.rater_id, payout.currency),
                credit=ledger.payouts_in_transit(payout.currency),
                memo=f"Payout {payout.pk} (batch {batch.pk}): reserved for sending",
                rater_id=payout.rater_id,
            )
            for payout in payouts
        ]
    )
    return payouts


def _enqueue_batch_send(batch_id: int) -> None:
    """Queue the batch's sending. If the broker is unreachable the batch is still safe: its payouts
    are pending and `payouts_send_due` picks them up once they are ORPHAN_AFTER old."""
    from payments import tasks

    try:
        tasks.payout_batch_send.delay(batch_id)
    except Exception:  # the broker's errors vary by transport; none may fail the staff request
        logger.exception("Could not queue payout batch %s; the retry job will send it", batch_id)


def payout_batch_send(*, batch_id: int) -> int:
    """Send every pending payout of the batch, one after another. Returns how many are now sent."""
    ids = list(
        Payout.objects.filter(batch_id=batch_id, status=PayoutStatus.PENDING)
        .order_by("id")
        .values_list("id", flat=True)
    )
    sent = 0
    for payout_id in ids:
        sent += payout_send(payout_id=payout_id).status in (PayoutStatus.SENT, PayoutStatus.PAID)
    return sent


def payouts_send_due(*, now: datetime | None = None) -> int:
    """The retry job: send the pending payouts whose next attempt is due, and those whose batch
    task seems lost. Returns how many it attempted."""
    now = now or timezone.now()
    due = (
        Payout.objects.filter(status=PayoutStatus.PENDING)
        .filter(Q(next_attempt_at__lte=now) | Q(next_attempt_at__isnull=True, created_at__lte=now - ORPHAN_AFTER))
        .order_by(F("next_attempt_at").asc(nulls_first=True), "id")
        .values_list("id", flat=True)[:SEND_DUE_LIMIT]
    )
    ids = list(due)
    for payout_id in ids:
        payout_send(payout_id=payout_id, now=now)
    return len(ids)


# --- Sending one payout ---------------------------------------------------------------------------


def payout_send(*, payout_id: int, now: datetime | None = None) -> Payout:
    """Send one payout to Stripe, or find that an earlier attempt already did. Safe to call again at
    any point: a payout that is not pending, or whose attempt is owned by another worker (its lease
    has not run out), or whose next retry is not due, is returned as it is.

    Must not run inside a transaction: the claim has to be committed before Stripe is called.
    """
    now = now or timezone.now()
    claimed = (
        Payout.objects.filter(pk=payout_id, status=PayoutStatus.PENDING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .update(attempts=F("attempts") + 1, next_attempt_at=now + SEND_LEASE)
    )
    payout = Payout.objects.select_related("connected_account").get(pk=payout_id)
    if not claimed:
        return payout
    try:
        transfer = _transfer_found(payout) if payout.attempts > 1 else None
        if transfer is None:
            transfer = stripe_api.transfer_create(
                amount=payout.amount_cents,
                currency=payout.currency,
                destination=payout.connected_account.stripe_account_id,
                idempotency_key=payout.idempotency_key,
                transfer_group=transfer_group(payout.pk),
                metadata={
                    "payout_id": str(payout.pk),
                    "batch_id": str(payout.batch_id),
                    "rater_id": str(payout.rater_id),
                },
                description=f"Payout {payout.pk} for evaluation work",
            )
    except stripe_api.StripeRecoverableError as error:
        return _attempt_failed(payout, error=error, now=now)
    except stripe_api.StripePermanentError as error:
        _payout_fail_and_return(payout, error=f"Stripe refused the transfer: {error}")
        return Payout.objects.get(pk=payout_id)
    return payout_sent_record(payout=payout, transfer=transfer)


def _transfer_found(payout: Payout) -> dict[str, Any] | None:
    """The transfer an earlier attempt made, if it reached Stripe."""
    found = [
        transfer
        for transfer in stripe_api.transfers_find(transfer_group=transfer_group(payout.pk))
        if transfer.get("destination") == payout.connected_account.stripe_account_id
    ]
    if len(found) > 1:
        # Should never happen (one key, one group per payout); reconciliation reports the extra one.
        logger.error("Payout %s has %d transfers at Stripe: %s", payout.pk, len(found), [t["id"] for t in found])
    # Stripe lists newest first: the oldest is the one the first attempt made.
    return found[-1] if found else None


def payout_sent_record(*, payout: Payout, transfer: dict[str, Any]) -> Payout:
    """Record that Stripe made `transfer` for `payout`: sent (or paid, if the rater's account has
    already paid out past it), the money out of our Stripe balance. Does nothing twice."""
    sent_at = _from_timestamp(transfer.get("created")) or timezone.now()
    with transaction.atomic():
        # The account first (as `payout.paid` does), so a bank payout reported meanwhile is seen.
        account = ConnectedAccount.objects.select_for_update().get(pk=payout.connected_account_id)
        paid = account.paid_through is not None and account.paid_through >= sent_at
        fields = {
            "status": PayoutStatus.PAID if paid else PayoutStatus.SENT,
            "stripe_transfer_id": transfer["id"],
            "sent_at": sent_at,
            "paid_at": account.paid_through if paid else None,
            "failed_at": None,
            "next_attempt_at": None,
            "last_error": "",
        }
        if not Payout.objects.filter(pk=payout.pk, status=PayoutStatus.PENDING).update(**fields):
            current = Payout.objects.select_for_update().get(pk=payout.pk)
            # A payout given up on (failed, its money still reserved) may turn out to have gone through.
            if current.status != PayoutStatus.FAILED or current.stripe_transfer_id:
                return current  # recorded already
            if _reservation_returned(current):
                raise ConflictError(
                    f"Payout {payout.pk} was returned to the rater, but Stripe made transfer {transfer['id']}.",
                    code="payout_returned_but_sent",
                )
            Payout.objects.filter(pk=payout.pk).update(**fields)
        for name, value in fields.items():
            setattr(payout, name, value)
        payout.connected_account = account
        ledger.ledger_post(
            postings=[
                ledger.move(
                    reference=f"payout:{payout.pk}",
                    kind="payout",
                    amount_cents=payout.amount_cents,
                    debit=ledger.payouts_in_transit(payout.currency),
                    credit=ledger.stripe_balance(payout.currency),
                    memo=f"Payout {payout.pk}: Stripe transfer {transfer['id']}",
                    rater_id=payout.rater_id,
                )
            ]
        )
        audit_record(
            actor=None,
            action="payout.sent",
            target=payout,
            data={"transfer": transfer["id"], "amount_cents": payout.amount_cents, "attempts": payout.attempts},
        )
    return payout


def _attempt_failed(payout: Payout, *, error: stripe_api.StripeError, now: datetime) -> Payout:
    """Stripe could not be reached or asked us to wait: try again later with the same key, or give
    up after MAX_ATTEMPTS, keeping the money reserved (Stripe may have made the transfer; staff
    retry looks it up first)."""
    message = f"Attempt {payout.attempts}: {error}"
    if payout.attempts < MAX_ATTEMPTS:
        delay = min(timedelta(minutes=2 ** (payout.attempts - 1)), BACKOFF_CAP)
        Payout.objects.filter(pk=payout.pk, status=PayoutStatus.PENDING).update(
            next_attempt_at=now + delay, last_error=message
        )
    else:
        with transaction.atomic():
            updated = Payout.objects.filter(pk=payout.pk, status=PayoutStatus.PENDING).update(
                status=PayoutStatus.FAILED,
                failed_at=now,
                next_attempt_at=None,
                last_error=f"{message}. Gave up after {payout.attempts} attempts; the money stays reserved "
                "until a staff retry finds out whether Stripe made the transfer.",
            )
            if updated:
                audit_record(
                    actor=None, action="payout.fail", target=payout, data={"error": message, "returned": False}
                )
    return Payout.objects.select_related("connected_account").get(pk=payout.pk)


def _payout_fail_and_return(payout: Payout, *, error: str) -> bool:
    """Stripe refused (or staff cancelled) the payout: failed, and its money available again."""
    with transaction.atomic():
        updated = Payout.objects.filter(pk=payout.pk, status=PayoutStatus.PENDING).update(
            status=PayoutStatus.FAILED, failed_at=timezone.now(), next_attempt_at=None, last_error=error
        )
        if not updated:
            return False
        _reservation_return(payout)
        audit_record(actor=None, action="payout.fail", target=payout, data={"error": error, "returned": True})
    return True


def _reservation_return(payout: Payout) -> None:
    ledger.ledger_post(
        postings=[
            ledger.move(
                reference=f"payout:{payout.pk}:return",
                kind="payout_return",
                amount_cents=payout.amount_cents,
                debit=ledger.payouts_in_transit(payout.currency),
                credit=ledger.rater_available(payout.rater_id, payout.currency),
                memo=f"Payout {payout.pk} not sent: money available again",
                rater_id=payout.rater_id,
            )
        ]
    )


# --- Staff: retry and reverse ---------------------------------------------------------------------


def payout_retry(*, payout: Payout, actor: Actor) -> Payout:
    """Staff retry of a failed payout: a new payout (its own on-demand batch) of the rater's whole
    available balance, if they can be paid now. Returns the new payout, sent on commit.

    A payout given up on after recoverable errors still has its money reserved: Stripe is asked
    first whether the transfer went through. If it did, that payout is recorded as sent and
    returned instead; if not, its money is made available again and paid by the new payout.
    """
    payout = Payout.objects.select_related("connected_account").get(pk=payout.pk)
    if payout.status != PayoutStatus.FAILED:
        raise ConflictError(
            f"Only a failed payout can be retried; this one is {payout.get_status_display().lower()}.",
            code="payout_not_failed",
        )
    if not _reservation_returned(payout):
        try:
            transfer = _transfer_found(payout)
        except stripe_api.StripeError as error:
            raise ApplicationError(
                f"Stripe could not be asked whether payout {payout.pk} went through ({error}). Try again later.",
                code="stripe_unavailable",
            ) from error
        if transfer is not None:
            return payout_sent_record(payout=payout, transfer=transfer)
    minimum = settings.PAYOUT_MINIMUM_CENTS
    with transaction.atomic():
        # Lock the rater's available account before reading it, as a batch does.
        LedgerAccount.objects.select_for_update().filter(
            key=ledger.rater_available(payout.rater_id, payout.currency).key
        ).first()
        if not _reservation_returned(payout):
            # Stripe has no transfer for it: its money is the rater's to be paid again.
            _reservation_return(payout)
            audit_record(
                actor=actor, action="payout.return", target=payout, data={"reason": "No transfer found at Stripe."}
            )
        lines = _lines(currency=payout.currency, minimum=minimum, rater_id=payout.rater_id)
        line = lines[0] if lines else None
        if line is not None and line.will_pay:
            batch = PayoutBatch.objects.create(
                trigger=PayoutBatchTrigger.STAFF,
                created_by=actor_user(actor),
                currency=payout.currency,
                minimum_cents=minimum,
                payouts_count=1,
                total_cents=line.amount_cents,
            )
            (new,) = _payouts_create(batch=batch, lines=[line])
            audit_record(
                actor=actor,
                action="payout.retry",
                target=new,
                data={"failed_payout": payout.pk, "batch": batch.pk, "amount_cents": new.amount_cents},
            )
            batch_id = batch.pk
            transaction.on_commit(lambda: _enqueue_batch_send(batch_id))
            return new
    # Refused after the transaction, so a reservation returned above stays returned.
    why = line.detail if line is not None else "No money is available to pay."
    raise ApplicationError(f"Cannot pay this rater now: {why}", code="payout_not_eligible")


def _reservation_returned(payout: Payout) -> bool:
    return ledger.LedgerTransaction.objects.filter(reference=f"payout:{payout.pk}:return").exists()


def payout_reverse(*, payout: Payout, actor: Actor, reason: str) -> Payout:
    """Staff take a sent or paid payout back from the rater's Stripe account: the money returns to
    our Stripe balance and to the rater's available balance (hold them to keep it from being paid
    again). Stripe refuses when the rater's account no longer has the money."""
    reason = (reason or "").strip()
    if not reason:
        raise ApplicationError(
            "Say why the payout is reversed.", code="reason_required", fields={"reason": ["Required."]}
        )
    payout = Payout.objects.get(pk=payout.pk)
    if payout.status not in (PayoutStatus.SENT, PayoutStatus.PAID) or not payout.stripe_transfer_id:
        raise ConflictError(
            f"Only a sent or paid payout can be reversed; this one is {payout.get_status_display().lower()}.",
            code="payout_not_reversible",
        )
    try:
        reversal = stripe_api.transfer_reverse(
            transfer_id=payout.stripe_transfer_id, idempotency_key=f"payout-{payout.pk}-reverse"
        )
    except stripe_api.StripeError as error:
        raise ApplicationError(f"Stripe did not reverse the transfer: {error}", code="reversal_refused") from error
    return _reversal_record(
        payout=payout,
        amount_cents=int(reversal.get("amount") or payout.amount_cents),
        actor=actor,
        data={"reason": reason, "reversal": reversal.get("id")},
    )


def _reversal_record(*, payout: Payout, amount_cents: int, actor: Actor, data: dict[str, Any]) -> Payout:
    with transaction.atomic():
        payout = Payout.objects.select_for_update().get(pk=payout.pk)
        if payout.status in (PayoutStatus.SENT, PayoutStatus.PAID):
            payout.status = PayoutStatus.REVERSED
            payout.reversed_at = timezone.now()
            payout.save(update_fields=["status", "reversed_at"])
            ledger.ledger_post(
                postings=[
                    ledger.move(
                        reference=f"payout:{payout.pk}:reversal",
                        kind="payout_reversal",
                        amount_cents=amount_cents,
                        debit=ledger.stripe_balance(payout.currency),
                        credit=ledger.rater_available(payout.rater_id, payout.currency),
                        memo=f"Payout {payout.pk} reversed (transfer {payout.stripe_transfer_id})",
                        rater_id=payout.rater_id,
                    )
                ]
            )
            audit_record(
                actor=actor,
                action="payout.reverse",
                target=payout,
                data={"transfer": payout.stripe_transfer_id, "amount_cents": amount_cents, **data},
            )
    return payout


# --- Webhooks -------------------------------------------------------------------------------------


@handles("payout.paid", endpoint=WebhookEndpoint.CONNECT)
def on_connected_payout_paid(event: StripeEvent, obj: dict[str, Any]) -> None:
    """A rater's Stripe account paid out to their bank: every transfer sent before it has arrived."""
    paid_at = event.stripe_created
    with transaction.atomic():
        account = ConnectedAccount.objects.select_for_update().filter(stripe_account_id=event.account).first()
        if account is None:
            raise EventIgnored(f"Account {event.account or '?'} is not a connected account of ours.")
        if account.paid_through is None or account.paid_through < paid_at:
            account.paid_through = paid_at
            account.save(update_fields=["paid_through", "updated_at"])
        paid = list(
            Payout.objects.filter(connected_account=account, status=PayoutStatus.SENT, sent_at__lte=paid_at)
            .order_by("id")
            .values_list("id", flat=True)
        )
        if paid:
            Payout.objects.filter(pk__in=paid).update(status=PayoutStatus.PAID, paid_at=paid_at)
            audit_record(
                actor=None,
                action="payout.paid",
                target=account,
                data={"payouts": paid, "stripe_payout": obj.get("id"), "event": event.event_id},
            )


@handles("transfer.reversed")
def on_transfer_reversed(event: StripeEvent, obj: dict[str, Any]) -> None:
    """A transfer was reversed (from the Dashboard, or our own `payout_reverse` reported back)."""
    payout = Payout.objects.filter(stripe_transfer_id=obj.get("id")).first()
    if payout is None:
        # Our record of the transfer may still be on its way (the send has not committed yet).
        raise EventDeferred(f"No payout records transfer {obj.get('id')} yet.")
    if payout.status == PayoutStatus.REVERSED:
        return
    if payout.status not in (PayoutStatus.SENT, PayoutStatus.PAID):
        raise EventIgnored(f"Payout {payout.pk} is {payout.status}: nothing to reverse.")
    amount = obj.get("amount_reversed")
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise EventIgnored(f"Transfer {obj.get('id')} reports nothing reversed.")
    _reversal_record(payout=payout, amount_cents=amount, actor=None, data={"event": event.event_id})


def _from_timestamp(value: object) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return datetime.fromtimestamp(value, tz=UTC)
