"""Amounts: zero, negative, non-integer and overflowing amounts are refused, and nothing changes.

Refused by the one posting function (`ledger.ledger_post`) and by the client-facing entry point
(`funding_checkout_create`); and a property test: any sequence of balanced postings keeps the
ledger provably consistent, with every currency summing to zero over all accounts.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

import pytest
from django.db import transaction
from django.db.models import Sum
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from crowdplatform.core.errors import ApplicationError
from crowdplatform.core.models import AuditEvent
from payments import ledger
from payments.funding import funding_checkout_create
from payments.models import Funding, LedgerAccount, LedgerEntry, LedgerTransaction

pytestmark = pytest.mark.django_db

MAX = ledger.MAX_AMOUNT_CENTS
BAD_AMOUNTS = [
    pytest.param(0, id="zero"),
    pytest.param(-500, id="negative"),
    pytest.param(10.5, id="float"),
    pytest.param(1000.0, id="whole-float"),
    pytest.param("1000", id="string"),
    pytest.param(Decimal("1000"), id="decimal"),
    pytest.param(True, id="bool"),
    pytest.param(None, id="none"),
    pytest.param(MAX + 1, id="overflow"),
    pytest.param(2**63, id="bigint-overflow"),
]


def state() -> dict[str, Any]:
    """Everything a refused call must leave as it was."""
    return {
        "transactions": LedgerTransaction.objects.count(),
        "entries": LedgerEntry.objects.count(),
        "balances": dict(LedgerAccount.objects.values_list("key", "balance_cents")),
        "fundings": list(Funding.objects.values_list("pk", "status", "amount_cents")),
        "audit": AuditEvent.objects.count(),
    }


@pytest.fixture
def funded(organization) -> dict[str, Any]:
    """Some money already in the ledger, so "nothing changed" is checked against real balances."""
    ledger.ledger_post(
        postings=[
            ledger.move(
                reference="setup:funding",
                kind="funding",
                amount_cents=5_000,
                debit=ledger.stripe_balance("usd"),
                credit=ledger.org_funds(organization.pk, "usd"),
            )
        ]
    )
    return state()


# --- The posting function -------------------------------------------------------------------------


@pytest.mark.parametrize("amount", [param for param in BAD_AMOUNTS if param.id != "negative"])
def test_ledger_post_refuses_a_bad_amount(organization, funded, amount):
    # (A negative line is a credit: lines are signed by design. Negative amounts where an amount must
    # be positive are refused by move and by funding_checkout_create: below.)
    posting = ledger.Posting(
        reference="bad",
        kind="test",
        lines=(
            ledger.Line(ledger.stripe_balance("usd"), amount),
            ledger.Line(ledger.org_funds(organization.pk, "usd"), amount),  # balance is not the point here
        ),
    )

    with pytest.raises(ApplicationError) as caught:
        ledger.ledger_post(postings=[posting])

    assert caught.value.code == "invalid_amount"
    assert state() == funded
    assert ledger.ledger_check().ok


@pytest.mark.parametrize("amount", BAD_AMOUNTS)
def test_ledger_post_refuses_a_move_of_a_bad_amount(organization, funded, amount):
    # A negative move would post the other way: refused like the rest.
    with pytest.raises(ApplicationError) as caught:
        ledger.ledger_post(
            postings=[
                ledger.move(
                    reference="bad",
                    kind="test",
                    amount_cents=amount,
                    debit=ledger.stripe_balance("usd"),
                    credit=ledger.org_funds(organization.pk, "usd"),
                )
            ]
        )

    assert caught.value.code == "invalid_amount"
    assert state() == funded
    assert ledger.ledger_check().ok


@pytest.mark.parametrize(
    "lines",
    [
        pytest.param((100, -99), id="short-by-one"),
        pytest.param((100, 100), id="same-sign"),
        pytest.param((100,), id="one-line"),
        pytest.param((MAX, MAX, -MAX), id="large-unbalanced"),
    ],
)
def test_ledger_post_refuses_an_unbalanced_posting(organization, funded, lines):
    accounts = [ledger.stripe_balance("usd"), ledger.org_funds(organization.pk, "usd"), ledger.stripe_fees("usd")]
    posting = ledger.Posting(
        reference="unbalanced",
        kind="test",
        lines=tuple(ledger.Line(account, amount) for account, amount in zip(accounts, lines, strict=False)),
    )

    with pytest.raises(ApplicationError) as caught:
        ledger.ledger_post(postings=[posting])

    assert caught.value.code in {"unbalanced_posting", "invalid_posting"}
    assert state() == funded
    assert ledger.ledger_check().ok


def test_one_bad_posting_refuses_the_whole_call(organization, funded):
    good = ledger.move(
        reference="good",
        kind="test",
        amount_cents=100,
        debit=ledger.stripe_balance("usd"),
        credit=ledger.org_funds(organization.pk, "usd"),
    )
    bad = ledger.Posting(
        reference="bad",
        kind="test",
        lines=(ledger.Line(ledger.stripe_balance("usd"), 0), ledger.Line(ledger.org_funds(organization.pk, "usd"), 0)),
    )

    with pytest.raises(ApplicationError):
        ledger.ledger_post(postings=[good, bad])

    assert state() == funded
    assert ledger.ledger_check().ok


# --- Funding --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        *[pytest.param(value.values[0], None, id=value.id) for value in BAD_AMOUNTS],
        pytest.param(499, "The smallest top-up is 5.00 USD.", id="below-minimum"),
        pytest.param(
            10_000_001,
            "The largest top-up is 100,000.00 USD; for more, make several or contact us.",
            id="above-maximum",
        ),
    ],
)
def test_funding_checkout_create_refuses_a_bad_amount(organization, owner, funded, amount, message):
    with pytest.raises(ApplicationError) as caught:
        funding_checkout_create(organization=organization, actor=owner, amount_cents=amount)

    assert caught.value.code == "invalid_amount"
    assert list(caught.value.fields) == ["amount_cents"]
    if message is not None:
        assert caught.value.message == message
        assert caught.value.fields == {"amount_cents": [message]}
    assert state() == funded  # no Funding, no audit row, no ledger change (and Stripe was never called)
    assert ledger.ledger_check().ok


@pytest.mark.parametrize("currency", ["", "us", "dollars", "u$d", 840, None])
def test_funding_checkout_create_refuses_a_bad_currency(organization, owner, funded, currency):
    with pytest.raises(ApplicationError) as caught:
        funding_checkout_create(organization=organization, actor=owner, amount_cents=1_000, currency=currency)

    assert caught.value.code == "invalid_currency"
    assert state() == funded
    assert ledger.ledger_check().ok


def test_the_funding_limits_themselves_are_accepted(stripe_sandbox, organization, owner, settings):
    low = funding_checkout_create(organization=organization, actor=owner, amount_cents=settings.FUNDING_MIN_CENTS)
    high = funding_checkout_create(organization=organization, actor=owner, amount_cents=settings.FUNDING_MAX_CENTS)

    assert [(funding.amount_cents, funding.status) for funding in (low, high)] == [(500, "open"), (10_000_000, "open")]
    assert LedgerTransaction.objects.count() == 0
    assert ledger.ledger_check().ok


# --- Property: balanced postings keep the ledger consistent -------------------------------------


@st.composite
def balanced_postings(draw: st.DrawFn, accounts: list[ledger.AccountRef]) -> list[tuple[int, tuple[int, ...]]]:
    """Postings as (account indexes, amounts): 2 to 4 distinct accounts of one currency, amounts of
    either sign, the last line making the sum zero."""
    postings = []
    for _ in range(draw(st.integers(min_value=1, max_value=8))):
        currency = draw(st.sampled_from(["usd", "eur"]))
        choices = [index for index, account in enumerate(accounts) if account.currency == currency]
        chosen = draw(st.lists(st.sampled_from(choices), min_size=2, max_size=4, unique=True))
        amounts = [
            draw(st.integers(min_value=1, max_value=10**9)) * draw(st.sampled_from([1, -1])) for _ in chosen[:-1]
        ]
        last = -sum(amounts)
        if last == 0:
            amounts[0] += 1
            last = -sum(amounts)
        if amounts[0] == 0:  # the nudge above cancelled the first line
            continue
        postings.append((tuple(chosen), (*amounts, last)))
    return postings


@pytest.fixture
def property_accounts(organization, other_organization, rater) -> list[ledger.AccountRef]:
    accounts = []
    for currency in ("usd", "eur"):
        accounts += [
            ledger.org_funds(organization.pk, currency),
            ledger.org_funds(other_organization.pk, currency),
            ledger.rater_pending(rater.pk, currency),
            ledger.rater_available(rater.pk, currency),
            ledger.platform_revenue(organization.pk, currency),
            ledger.stripe_balance(currency),
            ledger.stripe_fees(currency),
            ledger.platform_expense(currency),
        ]
    return accounts


def test_balanced_postings_keep_the_ledger_consistent(property_accounts):
    @hypothesis_settings(
        max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(postings=balanced_postings(property_accounts), repeat=st.booleans())
    def check(postings: list[tuple[tuple[int, ...], tuple[int, ...]]], repeat: bool) -> None:
        # Each example in a transaction rolled back at its end, so examples do not see each other.
        with transaction.atomic():
            expected: dict[str, int] = defaultdict(int)
            batch = []
            for number, (indexes, amounts) in enumerate(postings):
                lines = tuple(
                    ledger.Line(property_accounts[index], amount)
                    for index, amount in zip(indexes, amounts, strict=True)
                )
                batch.append(ledger.Posting(reference=f"prop:{number}", kind="test", lines=lines))
                for line in lines:
                    expected[line.account.key] += line.amount_cents
            ledger.ledger_post(postings=batch)
            if repeat:  # a retry of the whole batch posts nothing
                assert ledger.ledger_post(postings=batch).created == [False] * len(batch)

            check = ledger.ledger_check()
            assert check.ok, (check.unbalanced, check.balance_mismatches)
            assert check.transactions == len(batch)
            raw = dict(LedgerAccount.objects.values_list("key", "balance_cents"))
            assert {key: value for key, value in raw.items() if value} == {
                key: value for key, value in expected.items() if value
            }
            for currency in ("usd", "eur"):
                total = LedgerAccount.objects.filter(currency=currency).aggregate(total=Sum("balance_cents"))["total"]
                assert (total or 0) == 0
            transaction.set_rollback(True)

    check()
    assert LedgerTransaction.objects.count() == 0
