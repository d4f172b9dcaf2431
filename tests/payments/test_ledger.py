"""The ledger: one posting function, balanced transactions, unique references, derived balances."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, transaction

from crowdplatform.core.errors import ApplicationError, ConflictError
from payments import ledger
from payments.models import LedgerAccount, LedgerEntry, LedgerTransaction
from tests.payments.conftest import money_state

pytestmark = pytest.mark.django_db


def post(*postings: ledger.Posting) -> ledger.Posted:
    with transaction.atomic():
        return ledger.ledger_post(postings=list(postings))


def funding(reference: str = "funding:1", amount: int = 10_000, org: int = 1) -> ledger.Posting:
    return ledger.move(
        reference=reference,
        kind="funding",
        amount_cents=amount,
        debit=ledger.stripe_balance("usd"),
        credit=ledger.org_funds(org, "usd"),
    )


def test_a_posting_writes_balanced_entries_and_balances(organization):
    posted = post(funding(org=organization.pk))

    txn = posted.transactions[0]
    assert posted.created == [True]
    assert (txn.reference, txn.kind) == ("funding:1", "funding")
    assert sorted(txn.entries.values_list("account__key", "amount_cents")) == [
        (f"org_funds:{organization.pk}:usd", -10_000),
        ("stripe_balance:-:usd", 10_000),
    ]
    assert ledger.balance(ledger.org_funds(organization.pk, "usd")) == 10_000
    assert ledger.balance(ledger.stripe_balance("usd")) == 10_000
    assert posted.balances == {f"org_funds:{organization.pk}:usd": -10_000, "stripe_balance:-:usd": 10_000}
    assert ledger.ledger_check().ok


def test_the_same_reference_posts_once(organization):
    post(funding(org=organization.pk))
    again = post(funding(org=organization.pk))

    assert again.created == [False]
    assert LedgerTransaction.objects.count() == 1
    assert LedgerEntry.objects.count() == 2
    assert ledger.balance(ledger.org_funds(organization.pk, "usd")) == 10_000
    assert ledger.ledger_check().ok


def test_a_reference_reused_for_other_amounts_is_a_conflict(organization):
    post(funding(org=organization.pk))
    before = money_state()

    with pytest.raises(ConflictError) as error:
        post(funding(org=organization.pk, amount=9_999))

    assert error.value.code == "reference_reused"
    assert money_state() == before


@pytest.mark.parametrize(
    ("lines", "code"),
    [
        ((100, -99), "unbalanced_posting"),
        ((0, 0), "invalid_amount"),
        ((1.5, -1.5), "invalid_amount"),
        (("100", "-100"), "invalid_amount"),
        ((True, -1), "invalid_amount"),
        ((ledger.MAX_AMOUNT_CENTS + 1, -(ledger.MAX_AMOUNT_CENTS + 1)), "invalid_amount"),
        ((100,), "invalid_posting"),
    ],
)
def test_refused_postings_change_nothing(organization, lines, code):
    accounts = [ledger.stripe_balance("usd"), ledger.org_funds(organization.pk, "usd")]
    posting = ledger.Posting(
        reference="bad",
        kind="funding",
        lines=tuple(ledger.Line(account, amount) for account, amount in zip(accounts, lines, strict=False)),
    )
    before = money_state()

    with pytest.raises(ApplicationError) as error:
        post(posting)

    assert error.value.code == code
    assert money_state() == before


def test_bad_currency_and_duplicate_references_in_one_call_are_refused(organization):
    before = money_state()
    bad_currency = ledger.move(
        reference="x", kind="k", amount_cents=1, debit=ledger.stripe_balance("USD"), credit=ledger.stripe_fees("USD")
    )
    with pytest.raises(ApplicationError) as error:
        post(bad_currency)
    assert error.value.code == "invalid_currency"
    with pytest.raises(ApplicationError) as error:
        post(funding("same", org=organization.pk), funding("same", org=organization.pk))
    assert error.value.code == "duplicate_reference"
    assert money_state() == before


def test_postings_in_one_call_are_all_or_nothing(organization):
    before = money_state()
    with pytest.raises(ApplicationError):
        post(funding("good", org=organization.pk), funding("bad", amount=0, org=organization.pk))
    assert money_state() == before


def test_many_postings_in_one_call_update_each_balance_once(organization, other_organization):
    post(*(funding(f"funding:{n}", amount=100 + n, org=organization.pk) for n in range(700)))
    post(funding("other", amount=5, org=other_organization.pk))

    assert ledger.balance(ledger.org_funds(organization.pk, "usd")) == sum(100 + n for n in range(700))
    assert ledger.balance(ledger.org_funds(other_organization.pk, "usd")) == 5
    assert ledger.balance(ledger.stripe_balance("usd")) == sum(100 + n for n in range(700)) + 5
    check = ledger.ledger_check()
    assert (check.ok, check.transactions, check.entries) == (True, 701, 1402)


def test_check_finds_a_cached_balance_that_disagrees_with_the_entries(organization):
    post(funding(org=organization.pk))
    LedgerAccount.objects.filter(key=f"org_funds:{organization.pk}:usd").update(balance_cents=-1)

    check = ledger.ledger_check()

    assert not check.ok
    assert check.balance_mismatches == [(f"org_funds:{organization.pk}:usd", -1, -10_000)]


def test_the_database_refuses_to_change_or_delete_ledger_rows(organization):
    post(funding(org=organization.pk))
    with pytest.raises(DatabaseError), transaction.atomic():
        LedgerEntry.objects.update(amount_cents=1)
    with pytest.raises(DatabaseError), transaction.atomic():
        LedgerTransaction.objects.update(kind="other")
    assert ledger.ledger_check().ok


def test_display_balances_follow_the_account_kind(organization):
    post(
        ledger.Posting(
            reference="topup",
            kind="funding",
            lines=(
                ledger.Line(ledger.stripe_balance("usd"), 9_680),
                ledger.Line(ledger.stripe_fees("usd"), 320),
                ledger.Line(ledger.org_funds(organization.pk, "usd"), -10_000),
            ),
        )
    )
    assert ledger.balances(
        [ledger.stripe_balance("usd"), ledger.stripe_fees("usd"), ledger.rater_pending(9, "usd")]
    ) == {
        "stripe_balance:-:usd": 9_680,
        "stripe_fees:-:usd": 320,
        "rater_pending:9:usd": 0,
    }
