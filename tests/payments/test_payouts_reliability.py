"""A payout batch interrupted at each step and run again pays each rater exactly once.

Each test ends with exactly one transfer per rater at the sandbox, each of the rater's whole available
balance, the ledger balanced, nothing left in transit, and the ledger's Stripe balance equal to the
sandbox's. The interruptions:

- before the call: the worker dies after claiming the attempt (attempts + 1 committed) and before
  asking Stripe; Stripe answers 500 (nothing done);
- after Stripe did the work, before our commit: the answer is lost to a timeout; the same, with
  Stripe having forgotten the idempotency key (older than 24 h), so only the lookup by transfer
  group prevents a second transfer; the worker dies inside the transaction recording the transfer;
- after the commit: everything run again changes nothing.

And, on PostgreSQL (row locks across connections): two batches created at once, and a rater credited
by many postings at once while a batch is created.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from payments import ledger, payouts, stripe_api
from payments.models import LedgerTransaction, Payout, PayoutBatchTrigger, PayoutStatus
from payments.payouts import SEND_LEASE, payout_batch_create, payout_batch_send, payout_send, payouts_send_due
from tests.payments import sandbox_fixtures
from tests.payments.test_payouts import (
    USD,
    account_id,
    assert_ledger_ok,
    available,
    earned,
    in_transit,
    onboarded,
    references,
    stripe_balance_in_ledger,
    transfers_at_stripe,
)
from tests.threads import run_at_once

# The fixture, bound here so these tests don't depend on conftest (an import would trip F811).
stripe_sandbox = sandbox_fixtures.stripe_sandbox

pytestmark = pytest.mark.django_db

AMOUNTS = (1500, 2750, 10_001)


class WorkerDied(BaseException):
    """The process running the task is killed: nothing after this point runs, nothing catches it."""


@pytest.fixture
def batch(stripe_sandbox, organization, staff_user):
    """Three onboarded raters owed AMOUNTS, Stripe's balance funded, and their batch (not sent yet)."""
    raters = [onboarded(stripe_sandbox) for _ in AMOUNTS]
    for rater, cents in zip(raters, AMOUNTS, strict=True):
        earned(rater, cents, organization=organization, sandbox=stripe_sandbox)
    created = payout_batch_create(trigger=PayoutBatchTrigger.STAFF, actor=staff_user)
    created.raters = raters
    return created


def payouts_in_order(batch) -> list[Payout]:
    return list(batch.payouts.order_by("id"))


def assert_paid_exactly_once(batch, sandbox) -> None:
    transfers = transfers_at_stripe()
    by_destination: dict[str, list[dict[str, Any]]] = {}
    for transfer in transfers:
        by_destination.setdefault(transfer["destination"], []).append(transfer)
    assert {destination: len(made) for destination, made in by_destination.items()} == {
        account_id(rater): 1 for rater in batch.raters
    }
    for rater, cents in zip(batch.raters, AMOUNTS, strict=True):
        (transfer,) = by_destination[account_id(rater)]
        payout = Payout.objects.get(rater=rater)
        assert (payout.status, payout.stripe_transfer_id, transfer["amount"]) == (
            PayoutStatus.SENT,
            transfer["id"],
            cents,
        )
        assert available(rater) == 0
        assert {f"payout:{payout.pk}:reserve", f"payout:{payout.pk}"} <= references()
        assert f"payout:{payout.pk}:return" not in references()
    assert in_transit() == 0
    assert sandbox.state()["platform_balance"][USD] == stripe_balance_in_ledger()
    assert_ledger_ok()


def die_on_call(monkeypatch, target: object, name: str, *, call: int, when: Callable[..., bool] = lambda *a, **k: True):
    """Replace target.name so that its `call`-th matching call kills the worker (before running it)."""
    original = getattr(target, name)
    seen = {"calls": 0}

    def dying(*args: Any, **kwargs: Any) -> Any:
        if when(*args, **kwargs):
            seen["calls"] += 1
            if seen["calls"] == call:
                raise WorkerDied(f"killed in {name}")
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, dying)
    return seen


def forget_idempotency_keys(sandbox) -> None:
    """What Stripe does to keys older than 24 hours."""
    with sandbox.engine.lock:
        sandbox.engine.idempotent.clear()


# --- Before the call ---------------------------------------------------------------------------------


def test_worker_dies_after_claiming_and_before_calling_stripe(batch, stripe_sandbox, monkeypatch):
    _first, second, _third = payouts_in_order(batch)
    die_on_call(monkeypatch, stripe_api, "transfer_create", call=2)
    start = timezone.now()

    with pytest.raises(WorkerDied):
        payout_batch_send(batch_id=batch.pk)

    second.refresh_from_db()
    assert (second.status, second.attempts) == (PayoutStatus.PENDING, 1)  # the claim was committed first
    assert second.next_attempt_at >= start + SEND_LEASE
    assert len(transfers_at_stripe()) == 1
    monkeypatch.undo()

    # The task is redelivered at once: the third is sent, the second's attempt still owns it.
    assert payout_batch_send(batch_id=batch.pk) == 1
    assert Payout.objects.get(pk=second.pk).attempts == 1
    # Once the lease runs out, the retry job looks it up (nothing at Stripe) and sends it.
    assert payouts_send_due(now=timezone.now() + SEND_LEASE + timedelta(seconds=1)) == 1

    second.refresh_from_db()
    assert (second.status, second.attempts) == (PayoutStatus.SENT, 2)
    assert_paid_exactly_once(batch, stripe_sandbox)


def test_stripe_answers_500_before_doing_anything(batch, stripe_sandbox):
    stripe_sandbox.fault(method="POST", path_prefix="/v1/transfers", kind="500")

    assert payout_batch_send(batch_id=batch.pk) == 2

    first = payouts_in_order(batch)[0]
    assert (first.status, first.attempts) == (PayoutStatus.PENDING, 1)
    assert first.last_error.startswith("Attempt 1: An unknown error occurred (sandbox fault).")
    assert len(transfers_at_stripe()) == 2
    assert payouts_send_due(now=first.next_attempt_at) == 1
    assert_paid_exactly_once(batch, stripe_sandbox)


# --- After Stripe did the work, before our commit ------------------------------------------------------


def test_the_answer_is_lost_after_stripe_made_the_transfer(batch, stripe_sandbox):
    # Held longer than the client's 2 s timeout: Stripe made the transfer, we never hear of it.
    stripe_sandbox.fault(method="POST", path_prefix="/v1/transfers", kind="timeout", delay=3)

    assert payout_batch_send(batch_id=batch.pk) == 2

    first = payouts_in_order(batch)[0]
    assert (first.status, first.attempts, first.stripe_transfer_id) == (PayoutStatus.PENDING, 1, None)
    assert len(transfers_at_stripe()) == 3  # Stripe has all three; we recorded two
    assert in_transit() == AMOUNTS[0]
    payouts_send_due(now=first.next_attempt_at)
    first.refresh_from_db()
    assert (first.status, first.attempts) == (PayoutStatus.SENT, 2)
    assert_paid_exactly_once(batch, stripe_sandbox)


def test_the_answer_is_lost_and_stripe_has_forgotten_the_idempotency_key(batch, stripe_sandbox):
    stripe_sandbox.fault(method="POST", path_prefix="/v1/transfers", kind="timeout", delay=3)
    payout_batch_send(batch_id=batch.pk)
    first = payouts_in_order(batch)[0]
    forget_idempotency_keys(stripe_sandbox)  # a day later: the key would no longer replay the transfer

    payouts_send_due(now=first.next_attempt_at + timedelta(days=1))

    first.refresh_from_db()
    assert first.status == PayoutStatus.SENT
    # The lookup by transfer group found it: no transfer was even asked for (no key was stored again).
    assert (None, first.idempotency_key) not in stripe_sandbox.engine.idempotent
    assert_paid_exactly_once(batch, stripe_sandbox)


def test_worker_dies_inside_the_transaction_recording_the_transfer(batch, stripe_sandbox, monkeypatch):
    _first, second, _third = payouts_in_order(batch)
    die_on_call(monkeypatch, payouts, "audit_record", call=2, when=lambda **kw: kw.get("action") == "payout.sent")

    with pytest.raises(WorkerDied):
        payout_batch_send(batch_id=batch.pk)

    # Stripe made the second transfer; our status, posting and audit for it were rolled back together.
    second.refresh_from_db()
    assert (second.status, second.stripe_transfer_id, second.attempts) == (PayoutStatus.PENDING, None, 1)
    assert f"payout:{second.pk}" not in references()
    assert len(transfers_at_stripe()) == 2
    monkeypatch.undo()
    forget_idempotency_keys(stripe_sandbox)

    payout_batch_send(batch_id=batch.pk)
    payouts_send_due(now=timezone.now() + SEND_LEASE + timedelta(seconds=1))

    second.refresh_from_db()
    assert (second.status, second.attempts) == (PayoutStatus.SENT, 2)
    assert_paid_exactly_once(batch, stripe_sandbox)


# --- After the commit --------------------------------------------------------------------------------


def test_running_everything_again_after_the_commit_changes_nothing(batch, stripe_sandbox):
    assert payout_batch_send(batch_id=batch.pk) == 3
    recorded = {p.pk: (p.status, p.stripe_transfer_id, p.attempts) for p in payouts_in_order(batch)}
    transactions = LedgerTransaction.objects.count()

    assert payout_batch_send(batch_id=batch.pk) == 0
    assert payouts_send_due(now=timezone.now() + timedelta(days=2)) == 0
    for payout in payouts_in_order(batch):
        assert payout_send(payout_id=payout.pk, now=timezone.now() + timedelta(days=2)).status == PayoutStatus.SENT
    forget_idempotency_keys(stripe_sandbox)
    assert payout_batch_send(batch_id=batch.pk) == 0

    assert {p.pk: (p.status, p.stripe_transfer_id, p.attempts) for p in payouts_in_order(batch)} == recorded
    assert LedgerTransaction.objects.count() == transactions
    assert_paid_exactly_once(batch, stripe_sandbox)


# --- At once (PostgreSQL) ----------------------------------------------------------------------------

concurrent = (
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs PostgreSQL: row locks across concurrent connections (SQLite serializes every writer)",
    ),
    pytest.mark.django_db(transaction=True),
)


@pytest.mark.parametrize("batches", [2, 6])
@concurrent[0]
@concurrent[1]
def test_batches_created_at_once_pay_each_rater_once(stripe_sandbox, organization, staff_user, batches):
    raters = [onboarded(stripe_sandbox) for _ in AMOUNTS]
    for rater, cents in zip(raters, AMOUNTS, strict=True):
        earned(rater, cents, organization=organization, sandbox=stripe_sandbox)

    created = run_at_once(
        [lambda: payout_batch_create(trigger=PayoutBatchTrigger.STAFF, actor=staff_user) for _ in range(batches)]
    )

    assert sorted(batch.payouts_count for batch in created) == [0] * (batches - 1) + [3]
    (paying,) = [batch for batch in created if batch.payouts_count]
    paying.raters = raters
    assert Payout.objects.count() == 3
    assert_paid_exactly_once(paying, stripe_sandbox)


@concurrent[0]
@concurrent[1]
def test_a_rater_credited_by_many_postings_while_a_batch_is_created(stripe_sandbox, organization, staff_user):
    rater = onboarded(stripe_sandbox)
    earned(rater, 5000, organization=organization, sandbox=stripe_sandbox)
    credits, credit_cents = 24, 100
    # The money for the credits: a top-up, at Stripe and in the organization's funds.
    ledger.ledger_post(
        postings=[
            ledger.move(
                reference="test-topup:credits",
                kind="funding",
                amount_cents=credits * credit_cents,
                debit=ledger.stripe_balance(USD),
                credit=ledger.org_funds(organization.pk, USD),
                organization_id=organization.pk,
            )
        ]
    )
    stripe_sandbox.balance_add(amount=credits * credit_cents, currency=USD)

    def credit(n: int) -> Callable[[], Any]:
        return lambda: ledger.ledger_post(
            postings=[
                ledger.move(
                    reference=f"test-vote:{n}:pay",
                    kind="test_pay",
                    amount_cents=credit_cents,
                    debit=ledger.org_funds(organization.pk, USD),
                    credit=ledger.rater_available(rater.pk, USD),
                    rater_id=rater.pk,
                )
            ]
        )

    calls = [credit(n) for n in range(credits)]
    calls.insert(credits // 2, lambda: payout_batch_create(trigger=PayoutBatchTrigger.STAFF, actor=staff_user))

    run_at_once(calls)

    payout = Payout.objects.get(rater=rater)
    total = 5000 + credits * credit_cents
    assert 5000 <= payout.amount_cents <= total
    assert payout.amount_cents % credit_cents == 0
    assert available(rater) == total - payout.amount_cents  # never below zero: never more reserved than there was
    assert available(rater) >= 0
    assert payout.status == PayoutStatus.SENT  # sent on commit
    assert [t["amount"] for t in transfers_at_stripe() if t["destination"] == account_id(rater)] == [
        payout.amount_cents
    ]
    assert in_transit() == 0
    assert_ledger_ok()
