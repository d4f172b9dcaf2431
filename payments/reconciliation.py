"""Reconciliation: the ledger compared with what Stripe says happened.

- Every Stripe transfer must be a payout of ours (by transfer id) with the same amount, currency
  and destination, reversed (and by as much) on both sides or neither; every payout we recorded as
  sent, paid or reversed must exist at Stripe.
- Every balance transaction of a charge must be a paid top-up (`Funding.charge_id`) with the same
  amount and fee, and every paid top-up must have its charge; refunds and disputes must have their
  ledger postings (`refund:<re_…>`, `dispute:<du_…>`, its fee `dispute:<du_…>:fee`, a won
  dispute's `dispute:<du_…>:won`) with the same amounts.
- The ledger's Stripe balance must equal Stripe's balance (available + pending), per currency.

Each difference becomes a `ReconciliationMismatch` with both amounts and a sentence for staff, and
staff are mailed. Stripe's lists are streamed and compared in chunks (one query per chunk), so
neither side is loaded whole.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Any, TypeVar

from django.core.mail import mail_admins
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from payments import stripe_api
from payments.models import (
    AccountKind,
    Funding,
    FundingStatus,
    LedgerAccount,
    LedgerEntry,
    Payout,
    PayoutStatus,
    ReconciliationMismatch,
    ReconciliationRun,
    ReconciliationStatus,
)

logger = logging.getLogger(__name__)

CHUNK = 500
MAIL_LINES_MAX = 50
_RECORDED = (PayoutStatus.SENT, PayoutStatus.PAID, PayoutStatus.REVERSED)

T = TypeVar("T")


def reconcile(*, now: datetime | None = None) -> ReconciliationRun:
    """Compare the ledger with Stripe and record every mismatch. Objects created after `now` (on
    either side) are left for the next run. Never raises for Stripe being unreachable: the run
    says so (status error)."""
    now = now or timezone.now()
    run = ReconciliationRun.objects.create()
    comparison = _Comparison(now=now)
    try:
        comparison.run()
    except stripe_api.StripeError as error:
        run.status = ReconciliationStatus.ERROR
        run.error = f"Stripe could not be reached or refused: {error}"
        run.checked = comparison.checked
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "error", "checked", "finished_at"])
        _mail(f"Reconciliation {run.pk} could not complete", run.error)
        return run
    with transaction.atomic():
        ReconciliationMismatch.objects.bulk_create(
            [ReconciliationMismatch(run=run, **mismatch) for mismatch in comparison.mismatches]
        )
        run.status = ReconciliationStatus.MISMATCHES if comparison.mismatches else ReconciliationStatus.OK
        run.checked = comparison.checked
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "checked", "finished_at"])
    if comparison.mismatches:
        lines = [f"- {m['kind']} {m['reference']}: {m['detail']}" for m in comparison.mismatches[:MAIL_LINES_MAX]]
        if len(comparison.mismatches) > MAIL_LINES_MAX:
            lines.append(f"... and {len(comparison.mismatches) - MAIL_LINES_MAX} more (see the staff payouts console).")
        _mail(
            f"Reconciliation {run.pk}: {len(comparison.mismatches)} mismatch(es) between the ledger and Stripe",
            "\n".join(lines),
        )
    return run


def _mail(subject: str, message: str) -> None:
    mail_admins(subject, message, fail_silently=True)


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _money(cents: int | None, currency: str) -> str:
    return "nothing" if cents is None else f"{cents / 100:,.2f} {currency.upper()}"


_COUNTED = ("transfers", "payouts", "balance_transactions", "charges", "fundings", "refunds", "disputes")


@dataclass
class _Comparison:
    now: datetime  # objects created after it, on either side, are not compared
    mismatches: list[dict[str, Any]] = field(default_factory=list)
    checked: dict[str, Any] = field(default_factory=lambda: dict.fromkeys(_COUNTED, 0))

    @property
    def cutoff(self) -> int:
        """`now` in Stripe's time (whole seconds): an object created within that second counts."""
        return int(self.now.timestamp())

    def run(self) -> None:
        self._transfers()
        self._balance_transactions()
        self._balance()

    def _report(self, kind: str, reference: str, ledger: int | None, stripe: int | None, detail: str) -> None:
        self.mismatches.append(
            {
                "kind": kind,
                "reference": reference[:255],
                "ledger_cents": ledger,
                "stripe_cents": stripe,
                "detail": detail,
            }
        )

    # --- Transfers against payouts ----------------------------------------------------------------

    def _transfers(self) -> None:
        seen: set[str] = set()
        for chunk in _chunks(stripe_api.transfers_list(), CHUNK):
            chunk = [transfer for transfer in chunk if int(transfer.get("created") or 0) <= self.cutoff]
            ids = [transfer["id"] for transfer in chunk]
            seen.update(ids)
            payouts = {
                payout.stripe_transfer_id: payout
                for payout in Payout.objects.filter(stripe_transfer_id__in=ids).select_related("connected_account")
            }
            reversed_cents = self._reversals_posted(payouts.values())
            for transfer in chunk:
                self.checked["transfers"] += 1
                payout = payouts.get(transfer["id"])
                if payout is None:
                    self._transfer_unrecorded(transfer)
                else:
                    self._transfer_compare(transfer, payout, reversed_cents.get(payout.pk, 0))
        recorded = (
            Payout.objects.filter(status__in=_RECORDED, sent_at__lte=self.now)
            .order_by("id")
            .values_list("id", "stripe_transfer_id", "amount_cents", "currency")
        )
        for payout_id, transfer_id, amount, currency in recorded.iterator(chunk_size=CHUNK):
            self.checked["payouts"] += 1
            if transfer_id not in seen:
                self._report(
                    "payout_not_at_stripe",
                    f"payout:{payout_id}",
                    amount,
                    None,
                    f"Payout {payout_id} ({_money(amount, currency)}) is recorded as sent in transfer {transfer_id}, "
                    "which Stripe does not list.",
                )

    def _reversals_posted(self, payouts: Iterable[Payout]) -> dict[int, int]:
        references = {f"payout:{payout.pk}:reversal": payout.pk for payout in payouts}
        if not references:
            return {}
        rows = (
            LedgerEntry.objects.filter(transaction__reference__in=list(references), amount_cents__gt=0)
            .values("transaction__reference")
            .annotate(total=Sum("amount_cents"))
            .values_list("transaction__reference", "total")
        )
        return {references[reference]: total for reference, total in rows}

    def _transfer_unrecorded(self, transfer: dict[str, Any]) -> None:
        amount, currency = transfer.get("amount"), str(transfer.get("currency") or "")
        payout_id = (transfer.get("metadata") or {}).get("payout_id")
        where = f" (its metadata names payout {payout_id}, which has not recorded it)" if payout_id else ""
        self._report(
            "transfer_not_in_ledger",
            transfer["id"],
            None,
            amount,
            f"Stripe transfer {transfer['id']} of {_money(amount, currency)} to {transfer.get('destination')} "
            f"is not recorded by any payout{where}.",
        )

    def _transfer_compare(self, transfer: dict[str, Any], payout: Payout, reversed_ours: int) -> None:
        ref, currency = transfer["id"], payout.currency
        if transfer.get("amount") != payout.amount_cents:
            self._report(
                "transfer_amount",
                ref,
                payout.amount_cents,
                transfer.get("amount"),
                f"Payout {payout.pk} is {_money(payout.amount_cents, currency)} but Stripe transfer {ref} is "
                f"{_money(transfer.get('amount'), currency)}.",
            )
        if transfer.get("currency") != payout.currency:
            self._report(
                "transfer_currency",
                ref,
                payout.amount_cents,
                transfer.get("amount"),
                f"Payout {payout.pk} is in {payout.currency.upper()} but Stripe transfer {ref} is in "
                f"{str(transfer.get('currency')).upper()}.",
            )
        destination = payout.connected_account.stripe_account_id
        if transfer.get("destination") != destination:
            self._report(
                "transfer_destination",
                ref,
                payout.amount_cents,
                transfer.get("amount"),
                f"Payout {payout.pk} is for {destination} but Stripe transfer {ref} went to "
                f"{transfer.get('destination')}.",
            )
        reversed_stripe = int(transfer.get("amount_reversed") or 0)
        if reversed_stripe != reversed_ours:
            self._report(
                "transfer_reversal",
                ref,
                reversed_ours,
                reversed_stripe,
                f"Stripe has reversed {_money(reversed_stripe, currency)} of transfer {ref}; the ledger has "
                f"{_money(reversed_ours, currency)} back from payout {payout.pk} ({payout.status}).",
            )

    # --- Balance transactions: charges, refunds, disputes ------------------------------------------

    def _balance_transactions(self) -> None:
        charges_seen: set[str] = set()
        for chunk in _chunks(stripe_api.balance_transactions_list(), CHUNK):
            chunk = [txn for txn in chunk if int(txn.get("created") or 0) <= self.cutoff]
            self.checked["balance_transactions"] += len(chunk)
            charges = [txn for txn in chunk if _category(txn) == "charge"]
            charges_seen.update(str(txn.get("source")) for txn in charges)
            self._charges_compare(charges)
            self._postings_compare([txn for txn in chunk if _category(txn) in _POSTED_CATEGORIES])
        paid = (
            Funding.objects.filter(status=FundingStatus.PAID, paid_at__lte=self.now)
            .order_by("id")
            .values_list("id", "charge_id", "amount_cents", "currency")
        )
        for funding_id, charge_id, amount, currency in paid.iterator(chunk_size=CHUNK):
            self.checked["fundings"] += 1
            if charge_id not in charges_seen:
                self._report(
                    "funding_not_at_stripe",
                    f"funding:{funding_id}",
                    amount,
                    None,
                    f"Top-up {funding_id} ({_money(amount, currency)}) is credited from charge {charge_id or '?'}, "
                    "which has no balance transaction at Stripe.",
                )

    def _charges_compare(self, charges: list[dict[str, Any]]) -> None:
        if not charges:
            return
        fundings = {
            funding.charge_id: funding
            for funding in Funding.objects.filter(
                charge_id__in=[str(txn.get("source")) for txn in charges], status=FundingStatus.PAID
            )
        }
        for txn in charges:
            self.checked["charges"] += 1
            source, amount, fee, currency = str(txn.get("source")), txn.get("amount"), txn.get("fee"), txn["currency"]
            funding = fundings.get(source)
            if funding is None:
                self._report(
                    "charge_not_in_ledger",
                    source,
                    None,
                    amount,
                    f"Stripe charge {source} of {_money(amount, currency)} is not a paid top-up in the ledger.",
                )
                continue
            if amount != funding.amount_cents:
                self._report(
                    "charge_amount",
                    source,
                    funding.amount_cents,
                    amount,
                    f"Top-up {funding.pk} is {_money(funding.amount_cents, currency)} but charge {source} is "
                    f"{_money(amount, currency)}.",
                )
            if fee != funding.fee_cents:
                self._report(
                    "charge_fee",
                    source,
                    funding.fee_cents,
                    fee,
                    f"Top-up {funding.pk} records a Stripe fee of {_money(funding.fee_cents, currency)} but charge "
                    f"{source}'s fee is {_money(fee, currency)}.",
                )

    def _postings_compare(self, txns: list[dict[str, Any]]) -> None:
        """Refunds and disputes: the ledger posting named after the Stripe object, same amounts."""
        expected: list[tuple[str, int, dict[str, Any]]] = []  # (reference, amount, balance transaction)
        for txn in txns:
            category, source, amount = _category(txn), str(txn.get("source")), abs(int(txn.get("amount") or 0))
            self.checked[_CHECKED_AS[category]] += 1
            if category == "refund":
                expected.append((f"refund:{source}", amount, txn))
            elif category == "dispute":
                expected.append((f"dispute:{source}", amount, txn))
                if txn.get("fee"):
                    expected.append((f"dispute:{source}:fee", int(txn["fee"]), txn))
            else:  # dispute_reversal: a won dispute's money back
                expected.append((f"dispute:{source}:won", amount, txn))
        if not expected:
            return
        posted = dict(
            LedgerEntry.objects.filter(
                transaction__reference__in=[reference for reference, _amount, _txn in expected], amount_cents__gt=0
            )
            .values("transaction__reference")
            .annotate(total=Sum("amount_cents"))
            .values_list("transaction__reference", "total")
        )
        for reference, amount, txn in expected:
            currency, kind = txn["currency"], _category(txn)
            ours = posted.get(reference)
            if ours is None:
                self._report(
                    f"{kind}_not_in_ledger",
                    reference,
                    None,
                    amount,
                    f"Stripe's {kind.replace('_', ' ')} {txn.get('source')} ({_money(amount, currency)}, balance "
                    f"transaction {txn.get('id')}) has no ledger posting {reference}.",
                )
            elif ours != amount:
                self._report(
                    f"{kind}_amount",
                    reference,
                    ours,
                    amount,
                    f"Ledger posting {reference} moved {_money(ours, currency)} but Stripe's balance transaction "
                    f"{txn.get('id')} moved {_money(amount, currency)}.",
                )

    # --- Balance -----------------------------------------------------------------------------------

    def _balance(self) -> None:
        stripe_side: dict[str, int] = defaultdict(int)
        balance = stripe_api.balance_retrieve()
        for part in ("available", "pending"):
            for row in balance.get(part) or []:
                stripe_side[row["currency"]] += int(row["amount"])
        ledger_side = {
            account.currency: account.balance_for_display
            for account in LedgerAccount.objects.filter(kind=AccountKind.STRIPE_BALANCE)
        }
        currencies = sorted(set(stripe_side) | set(ledger_side))
        self.checked["currencies"] = currencies
        for currency in currencies:
            ours, theirs = ledger_side.get(currency, 0), stripe_side.get(currency, 0)
            if ours != theirs:
                self._report(
                    "balance",
                    f"stripe_balance:{currency}",
                    ours,
                    theirs,
                    f"The ledger's Stripe balance is {_money(ours, currency)} but Stripe's balance (available + "
                    f"pending) is {_money(theirs, currency)}: a difference of {_money(theirs - ours, currency)}.",
                )


_POSTED_CATEGORIES = frozenset({"refund", "dispute", "dispute_reversal"})
_CHECKED_AS = {"refund": "refunds", "dispute": "disputes", "dispute_reversal": "disputes"}


def _category(txn: dict[str, Any]) -> str:
    """What the balance transaction is, by Stripe's reporting category (its `type` is less stable),
    falling back to the source id's prefix."""
    category = txn.get("reporting_category")
    if isinstance(category, str) and category:
        return category
    source = str(txn.get("source") or "")
    for prefix, name in (("ch_", "charge"), ("py_", "charge"), ("re_", "refund"), ("du_", "dispute")):
        if source.startswith(prefix):
            return name
    return str(txn.get("type") or "other")
