"""The ledger: one posting function, balanced transactions, unique references.

Every movement of money is a `Posting`: a unique reference (`vote:<id>:pay`, `payout:<id>`,
...), a kind and two or more lines whose amounts (debit positive, credit negative) sum to
zero in each currency. `ledger_post` is the only code that writes ledger rows. Posting a
reference that already exists posts nothing and returns the existing transaction (after
checking it says the same thing), so any retry is safe.

Each account's balance is cached on its row and updated in the posting's transaction, with
the rows locked in id order (so concurrent postings never deadlock); `ledger_check` proves
every cached balance equals the sum of its entries and every transaction balances.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import Case, F, Sum, Value, When
from django.utils import timezone

from crowdplatform.core.errors import ApplicationError, ConflictError
from payments.models import AccountKind, LedgerAccount, LedgerEntry, LedgerTransaction

# Far above any real amount (ten billion dollars) and far below BIGINT's limit, so that sums of
# many entries can never overflow the database column.
MAX_AMOUNT_CENTS = 10**12
_CURRENCY = re.compile(r"^[a-z]{3}$")
_BALANCE_UPDATE_CHUNK = 500


def amount_validated(value: object, *, name: str = "amount_cents", minimum: int = 1) -> int:
    """An amount in cents as an int, or ApplicationError: no floats, strings, booleans, zero,
    negatives (below `minimum`) or amounts beyond MAX_AMOUNT_CENTS."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApplicationError(
            f"{name} must be a whole number of cents.", code="invalid_amount", fields={name: ["Not an integer."]}
        )
    if value < minimum:
        raise ApplicationError(
            f"{name} must be at least {minimum}.", code="invalid_amount", fields={name: [f"Below {minimum}."]}
        )
    if value > MAX_AMOUNT_CENTS:
        raise ApplicationError(
            f"{name} is too large.", code="invalid_amount", fields={name: [f"Above {MAX_AMOUNT_CENTS}."]}
        )
    return value


# --- Accounts -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountRef:
    """Names a ledger account without touching the database; `ledger_post` creates it on first use."""

    kind: str
    currency: str
    organization_id: int | None = None
    rater_id: int | None = None

    @property
    def key(self) -> str:
        owner = self.organization_id if self.organization_id is not None else self.rater_id
        return f"{self.kind}:{owner if owner is not None else '-'}:{self.currency}"


def org_funds(organization_id: int, currency: str) -> AccountRef:
    return AccountRef(AccountKind.ORG_FUNDS, currency, organization_id=organization_id)


def platform_revenue(organization_id: int, currency: str) -> AccountRef:
    """Fee revenue is kept per paying organization, so votes of different clients never
    contend for one hot row; the platform's total is the sum over the kind."""
    return AccountRef(AccountKind.PLATFORM_REVENUE, currency, organization_id=organization_id)


def rater_pending(rater_id: int, currency: str) -> AccountRef:
    return AccountRef(AccountKind.RATER_PENDING, currency, rater_id=rater_id)


def rater_available(rater_id: int, currency: str) -> AccountRef:
    return AccountRef(AccountKind.RATER_AVAILABLE, currency, rater_id=rater_id)


def payouts_in_transit(currency: str) -> AccountRef:
    return AccountRef(AccountKind.PAYOUTS_IN_TRANSIT, currency)


def platform_expense(currency: str) -> AccountRef:
    return AccountRef(AccountKind.PLATFORM_EXPENSE, currency)


def stripe_balance(currency: str) -> AccountRef:
    return AccountRef(AccountKind.STRIPE_BALANCE, currency)


def stripe_fees(currency: str) -> AccountRef:
    return AccountRef(AccountKind.STRIPE_FEES, currency)


# --- Postings -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    account: AccountRef
    amount_cents: int  # positive: debit; negative: credit


@dataclass(frozen=True)
class Posting:
    reference: str
    kind: str
    lines: tuple[Line, ...]
    memo: str = ""
    organization_id: int | None = None
    study_id: int | None = None
    rater_id: int | None = None
    created_at: datetime | None = None


def move(
    *,
    reference: str,
    kind: str,
    amount_cents: int,
    debit: AccountRef,
    credit: AccountRef,
    memo: str = "",
    organization_id: int | None = None,
    study_id: int | None = None,
    rater_id: int | None = None,
    created_at: datetime | None = None,
) -> Posting:
    """The common two-line posting: `amount_cents` (positive) from `credit` to `debit`."""
    amount_validated(amount_cents)  # a negative amount would silently post the other way
    return Posting(
        reference=reference,
        kind=kind,
        lines=(Line(debit, amount_cents), Line(credit, -amount_cents)),
        memo=memo,
        organization_id=organization_id,
        study_id=study_id,
        rater_id=rater_id,
        created_at=created_at,
    )


@dataclass
class Posted:
    """What `ledger_post` did: every posting's transaction (new or already there), which of
    them it created, and the raw balance (debit-positive) of every account it touched."""

    transactions: list[LedgerTransaction]
    created: list[bool]
    balances: dict[str, int] = field(default_factory=dict)


def ledger_post(*, postings: Sequence[Posting]) -> Posted:
    """Post each posting once. Refuses (ApplicationError) an unbalanced posting, a zero,
    non-integer or oversized amount, or a bad currency; a reference already posted with
    different lines is a ConflictError. All or nothing."""
    for posting in postings:
        _validate(posting)
    references = [posting.reference for posting in postings]
    if len(set(references)) != len(references):
        raise ApplicationError("The same reference appears twice in one call.", code="duplicate_reference")
    # No savepoint of its own: inside a caller's transaction a failure rolls the caller back too.
    with transaction.atomic(savepoint=False):
        if len(postings) == 1:
            return _post_one(postings[0])
        existing = _existing(references)
        new = [posting for posting in postings if posting.reference not in existing]
        for posting in postings:
            if posting.reference in existing:
                _check_same(existing[posting.reference], posting)
        balances: dict[str, int] = {}
        if new:
            try:
                with transaction.atomic():
                    created, balances = _write(new)
            except IntegrityError:
                # Another request posted one of these references since we looked: post one by
                # one so each reference is either ours or theirs, never twice.
                created, balances = _write_one_by_one(new)
            existing.update(created)
        fresh = {posting.reference for posting in new}
        return Posted(
            transactions=[existing[reference] for reference in references],
            created=[reference in fresh for reference in references],
            balances=balances,
        )


def _post_one(posting: Posting) -> Posted:
    """The common case (a vote's pay, a bonus): insert optimistically; the unique reference
    tells us, by refusing, that it was posted already. One statement fewer than looking first."""
    try:
        with transaction.atomic():
            created, balances = _write([posting])
    except IntegrityError:
        txn = LedgerTransaction.objects.get(reference=posting.reference)
        _check_same(txn, posting)
        return Posted(transactions=[txn], created=[False])
    return Posted(transactions=[created[posting.reference]], created=[True], balances=balances)


def _validate(posting: Posting) -> None:
    if not posting.reference or len(posting.reference) > 160:
        raise ApplicationError("A posting needs a reference of 1 to 160 characters.", code="invalid_posting")
    if len(posting.lines) < 2:
        raise ApplicationError("A posting needs at least two lines.", code="invalid_posting")
    totals: dict[str, int] = defaultdict(int)
    for line in posting.lines:
        if not _CURRENCY.match(line.account.currency):
            raise ApplicationError(f"Unknown currency {line.account.currency!r}.", code="invalid_currency")
        amount = line.amount_cents
        amount_validated(abs(amount) if isinstance(amount, int) and not isinstance(amount, bool) else amount)
        totals[line.account.currency] += amount
    unbalanced = {currency: total for currency, total in totals.items() if total != 0}
    if unbalanced:
        raise ApplicationError(
            f"Posting {posting.reference} does not balance: {unbalanced}.", code="unbalanced_posting"
        )


def _existing(references: Iterable[str]) -> dict[str, LedgerTransaction]:
    return {txn.reference: txn for txn in LedgerTransaction.objects.filter(reference__in=list(references))}


def _check_same(txn: LedgerTransaction, posting: Posting) -> None:
    stored = sorted(txn.entries.values_list("account__key", "amount_cents"))
    wanted = sorted((line.account.key, line.amount_cents) for line in posting.lines)
    if stored != wanted:
        raise ConflictError(
            f"Reference {posting.reference} was already posted with different amounts.", code="reference_reused"
        )


def _write(postings: Sequence[Posting]) -> tuple[dict[str, LedgerTransaction], dict[str, int]]:
    accounts = _accounts_locked({line.account for posting in postings for line in posting.lines})
    now = timezone.now()
    transactions = LedgerTransaction.objects.bulk_create(
        [
            LedgerTransaction(
                reference=posting.reference,
                kind=posting.kind,
                memo=posting.memo[:255],
                organization_id=posting.organization_id,
                study_id=posting.study_id,
                rater_id=posting.rater_id,
                created_at=posting.created_at or now,
            )
            for posting in postings
        ]
    )
    deltas: dict[int, int] = defaultdict(int)
    entries = []
    for txn, posting in zip(transactions, postings, strict=True):
        for line in posting.lines:
            account = accounts[line.account.key]
            deltas[account.pk] += line.amount_cents
            entries.append(
                LedgerEntry(transaction=txn, account=account, amount_cents=line.amount_cents, currency=account.currency)
            )
    LedgerEntry.objects.bulk_create(entries)
    _balances_add(deltas)
    balances = {key: account.balance_cents + deltas.get(account.pk, 0) for key, account in accounts.items()}
    return {txn.reference: txn for txn in transactions}, balances


def _write_one_by_one(postings: Sequence[Posting]) -> tuple[dict[str, LedgerTransaction], dict[str, int]]:
    written: dict[str, LedgerTransaction] = {}
    balances: dict[str, int] = {}
    for posting in postings:
        try:
            with transaction.atomic():
                created, touched = _write([posting])
            written.update(created)
            balances.update(touched)
        except IntegrityError:
            txn = LedgerTransaction.objects.get(reference=posting.reference)
            _check_same(txn, posting)
            written[posting.reference] = txn
    return written, balances


def _accounts_locked(refs: set[AccountRef]) -> dict[str, LedgerAccount]:
    """The accounts, created if new, locked in id order for the rest of the transaction."""
    by_key = {ref.key: ref for ref in refs}
    locked = {account.key: account for account in _lock(by_key)}
    missing = [ref for key, ref in by_key.items() if key not in locked]
    if missing:
        LedgerAccount.objects.bulk_create(
            [
                LedgerAccount(
                    key=ref.key,
                    kind=ref.kind,
                    currency=ref.currency,
                    organization_id=ref.organization_id,
                    rater_id=ref.rater_id,
                )
                for ref in missing
            ],
            ignore_conflicts=True,
        )
        locked.update({account.key: account for account in _lock({ref.key: ref for ref in missing})})
    return locked


def _lock(by_key: dict[str, AccountRef]) -> list[LedgerAccount]:
    return list(LedgerAccount.objects.select_for_update().filter(key__in=list(by_key)).order_by("id"))


def _balances_add(deltas: dict[int, int]) -> None:
    changed = sorted((pk, delta) for pk, delta in deltas.items() if delta)
    for start in range(0, len(changed), _BALANCE_UPDATE_CHUNK):
        chunk = changed[start : start + _BALANCE_UPDATE_CHUNK]
        LedgerAccount.objects.filter(pk__in=[pk for pk, _ in chunk]).update(
            balance_cents=F("balance_cents") + Case(*(When(pk=pk, then=Value(delta)) for pk, delta in chunk))
        )


# --- Reading balances and proving the ledger ------------------------------------------------------


def balance(ref: AccountRef) -> int:
    """The account's balance as people read it (what we owe, for a liability); 0 if never used."""
    return balances([ref])[ref.key]


def balances(refs: Iterable[AccountRef]) -> dict[str, int]:
    refs = list(refs)
    found = {
        account.key: account.balance_for_display
        for account in LedgerAccount.objects.filter(key__in=[ref.key for ref in refs])
    }
    return {ref.key: found.get(ref.key, 0) for ref in refs}


@dataclass
class LedgerCheck:
    unbalanced: list[tuple[str, str, int]]  # (reference, currency, sum)
    balance_mismatches: list[tuple[str, int, int]]  # (account key, cached, from entries)
    transactions: int
    entries: int

    @property
    def ok(self) -> bool:
        return not self.unbalanced and not self.balance_mismatches


def ledger_check() -> LedgerCheck:
    """Every transaction sums to zero per currency; every cached balance equals its entries."""
    unbalanced = [
        (row["transaction__reference"], row["currency"], row["total"])
        for row in LedgerEntry.objects.values("transaction__reference", "currency")
        .annotate(total=Sum("amount_cents"))
        .exclude(total=0)
        .order_by()
    ]
    sums = dict(
        LedgerEntry.objects.values("account_id")
        .annotate(total=Sum("amount_cents"))
        .values_list("account_id", "total")
        .order_by()
    )
    mismatches = [
        (account.key, account.balance_cents, sums.get(account.pk, 0))
        for account in LedgerAccount.objects.all()
        if account.balance_cents != sums.get(account.pk, 0)
    ]
    return LedgerCheck(
        unbalanced=unbalanced,
        balance_mismatches=mismatches,
        transactions=LedgerTransaction.objects.count(),
        entries=LedgerEntry.objects.count(),
    )
