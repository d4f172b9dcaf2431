"""Rater payouts: holds, batch preview and creation, sending through the sandbox, failures, retries,
webhooks (payout.paid, transfer.reversed) and staff actions. The sandbox is the real SDK over HTTP.

Helpers here (`rater_new`, `onboarded`, `earned`, ...) are shared with the reliability and
reconciliation tests.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import timedelta

import pytest
import requests
from django.conf import settings as django_settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from crowdplatform.accounts.models import AccountType
from crowdplatform.core.errors import ApplicationError, ConflictError
from crowdplatform.core.models import AuditEvent
from crowdplatform.raters.models import RaterProfile
from payments import ledger, payouts, stripe_api, tasks
from payments.connect import account_status_refresh, connected_account_ensure
from payments.models import (
    ConnectedAccount,
    LedgerTransaction,
    Payout,
    PayoutBatch,
    PayoutBatchTrigger,
    PayoutHold,
    PayoutStatus,
    StripeEvent,
    StripeEventStatus,
)
from payments.payouts import (
    MAX_ATTEMPTS,
    SKIP_BELOW_MINIMUM,
    SKIP_HELD,
    SKIP_IN_FLIGHT,
    SKIP_NOT_ONBOARDED,
    SKIP_TRANSFERS_INACTIVE,
    payout_batch_create,
    payout_batch_preview,
    payout_batch_send,
    payout_hold,
    payout_hold_release,
    payout_retry,
    payout_reverse,
    payout_send,
    payouts_send_due,
)
from payments.webhooks import EventDeferred, EventIgnored
from tests.factories import UserFactory
from tests.payments import sandbox_fixtures
from tests.payments.webhook_delivery import deliver_all

# The fixture, bound here so these tests don't depend on conftest (an import would trip F811).
stripe_sandbox = sandbox_fixtures.stripe_sandbox

pytestmark = pytest.mark.django_db

USD = "usd"
STAFF = PayoutBatchTrigger.STAFF


# --- Helpers (shared with test_payouts_reliability.py and test_reconciliation.py) -----------------


def rater_new():
    user = UserFactory(account_type=AccountType.RATER)
    RaterProfile.objects.create(user=user)
    return user


def onboarded(sandbox, rater=None, *, complete: bool = True):
    """A rater whose Stripe account finished onboarding (or is pending verification), status applied."""
    rater = rater or rater_new()
    account = connected_account_ensure(rater=rater)
    sandbox.account_onboard(account_id=account.stripe_account_id, complete=complete)
    account_status_refresh(rater=rater)
    return rater


def earned(rater, cents: int, *, organization, sandbox=None) -> None:
    """`cents` more available pay for the rater, paid from the organization's funds, which came from a
    top-up that also reached the sandbox's balance (so the ledger's Stripe balance equals Stripe's)."""
    tag = uuid.uuid4().hex
    ledger.ledger_post(
        postings=[
            ledger.move(
                reference=f"test-topup:{tag}",
                kind="funding",
                amount_cents=cents,
                debit=ledger.stripe_balance(USD),
                credit=ledger.org_funds(organization.pk, USD),
                organization_id=organization.pk,
            ),
            ledger.move(
                reference=f"test-earning:{tag}",
                kind="earning_release",
                amount_cents=cents,
                debit=ledger.org_funds(organization.pk, USD),
                credit=ledger.rater_available(rater.pk, USD),
                organization_id=organization.pk,
                rater_id=rater.pk,
            ),
        ]
    )
    if sandbox is not None:
        sandbox.balance_add(amount=cents, currency=USD)


def available(rater) -> int:
    return ledger.balance(ledger.rater_available(rater.pk, USD))


def in_transit() -> int:
    return ledger.balance(ledger.payouts_in_transit(USD))


def stripe_balance_in_ledger() -> int:
    return ledger.balance(ledger.stripe_balance(USD))


def transfers_at_stripe() -> list[dict]:
    return list(stripe_api.transfers_list())


def transfers_per_destination() -> Counter:
    return Counter(transfer["destination"] for transfer in transfers_at_stripe())


def account_id(rater) -> str:
    return ConnectedAccount.objects.get(rater=rater).stripe_account_id


def references() -> set[str]:
    return set(LedgerTransaction.objects.values_list("reference", flat=True))


def assert_ledger_ok() -> None:
    check = ledger.ledger_check()
    assert check.ok, (check.unbalanced, check.balance_mismatches)


# --- Holds ------------------------------------------------------------------------------------------


def test_hold_needs_a_reason_and_changes_nothing_without_one(rater, staff_user):
    for reason in ("", "   ", None):
        with pytest.raises(ApplicationError) as refused:
            payout_hold(rater=rater, reason=reason, actor=staff_user)
        assert refused.value.code == "reason_required"
    assert PayoutHold.objects.count() == 0
    assert AuditEvent.objects.count() == 0


def test_hold_and_release_are_audited_and_a_second_hold_is_refused(rater, staff_user):
    hold = payout_hold(rater=rater, reason="  Suspicious activity under review ", actor=staff_user)

    assert (hold.reason, hold.created_by, hold.released_at) == ("Suspicious activity under review", staff_user, None)
    with pytest.raises(ConflictError) as twice:
        payout_hold(rater=rater, reason="again", actor=staff_user)
    assert twice.value.code == "already_held"
    with pytest.raises(ApplicationError) as no_note:
        payout_hold_release(hold=hold, note=" ", actor=staff_user)
    assert no_note.value.code == "note_required"
    assert PayoutHold.objects.get().released_at is None

    released = payout_hold_release(hold=hold, note="Cleared by review", actor=staff_user)

    assert (released.release_note, released.released_by) == ("Cleared by review", staff_user)
    assert released.released_at is not None
    with pytest.raises(ConflictError):
        payout_hold_release(hold=hold, note="again", actor=staff_user)
    audits = [(a.action, a.actor_user_id, a.target_id, a.data) for a in AuditEvent.objects.order_by("id")]
    assert audits == [
        (
            "payout.hold",
            staff_user.pk,
            str(hold.pk),
            {"rater_id": rater.pk, "reason": "Suspicious activity under review", "cancelled_payouts": []},
        ),
        ("payout.hold_release", staff_user.pk, str(hold.pk), {"rater_id": rater.pk, "note": "Cleared by review"}),
    ]
    # Released: a new hold is allowed.
    payout_hold(rater=rater, reason="Another review", actor=staff_user)
    assert PayoutHold.objects.filter(released_at__isnull=True).count() == 1


def test_hold_cancels_a_payout_not_yet_attempted_and_makes_its_money_available(
    stripe_sandbox, organization, staff_user
):
    rater = onboarded(stripe_sandbox)
    earned(rater, 2500, organization=organization, sandbox=stripe_sandbox)
    batch = payout_batch_create(trigger=STAFF, actor=staff_user)  # sending would start on commit
    payout = batch.payouts.get()
    assert (available(rater), in_transit()) == (0, 2500)

    hold = payout_hold(rater=rater, reason="Chargeback on a client", actor=staff_user)

    payout.refresh_from_db()
    assert (payout.status, payout.last_error) == (
        PayoutStatus.FAILED,
        "Cancelled before sending: payouts held by staff.",
    )
    assert (available(rater), in_transit()) == (0 + 2500, 0)
    assert AuditEvent.objects.get(action="payout.hold").data["cancelled_payouts"] == [payout.pk]
    assert payout_batch_send(batch_id=batch.pk) == 0
    assert transfers_at_stripe() == []
    assert PayoutHold.objects.get() == hold
    assert_ledger_ok()


# --- Preview ------------------------------------------------------------------------------------------


def test_preview_says_for_each_rater_with_money_what_the_batch_will_do(
    stripe_sandbox, organization, staff_user, django_assert_num_queries
):
    paid = onboarded(stripe_sandbox)
    small = onboarded(stripe_sandbox)
    held = onboarded(stripe_sandbox)
    not_onboarded = rater_new()
    pending_verification = onboarded(stripe_sandbox, complete=False)
    in_flight = onboarded(stripe_sandbox)
    rater_new()  # no money: not listed
    earned(in_flight, 1200, organization=organization)
    payout_batch_create(trigger=STAFF, actor=staff_user)  # in_flight's payout, not sent yet
    for rater, cents in [
        (paid, 2500),
        (small, 999),
        (held, 5000),
        (not_onboarded, 3000),
        (pending_verification, 4000),
        (in_flight, 1500),
    ]:
        earned(rater, cents, organization=organization)
    payout_hold(rater=held, reason="Quality review", actor=staff_user)

    with django_assert_num_queries(1):
        preview = payout_batch_preview(minimum_cents=1000)

    lines = [(line.rater_id, line.available_cents, line.amount_cents, line.skip, line.detail) for line in preview.lines]
    assert lines == [
        (paid.pk, 2500, 2500, "", "Will be paid 25.00 USD."),
        (small.pk, 999, 0, SKIP_BELOW_MINIMUM, "Below the 10.00 USD minimum."),
        (held.pk, 5000, 0, SKIP_HELD, "Payouts held by staff: Quality review"),
        (not_onboarded.pk, 3000, 0, SKIP_NOT_ONBOARDED, "Has not set up a Stripe account for payouts."),
        (
            pending_verification.pk,
            4000,
            0,
            SKIP_TRANSFERS_INACTIVE,
            "Stripe cannot send transfers to this account yet (pending).",
        ),
        (in_flight.pk, 1500, 0, SKIP_IN_FLIGHT, "A payout is already being sent."),
    ]
    assert (preview.payouts_count, preview.total_cents, preview.minimum_cents, preview.currency) == (1, 2500, 1000, USD)
    assert [line.rater_email for line in preview.to_pay] == [paid.email]
    assert len(preview.skipped) == 5
    assert_ledger_ok()


def test_preview_uses_the_payout_minimum_setting_by_default(organization, settings):
    settings.PAYOUT_MINIMUM_CENTS = 5000
    rater = rater_new()
    ConnectedAccount.objects.create(rater=rater, stripe_account_id="acct_min", transfers_capability="active")
    earned(rater, 4999, organization=organization)

    preview = payout_batch_preview()

    assert preview.minimum_cents == 5000
    assert [(line.skip, line.detail) for line in preview.lines] == [
        (SKIP_BELOW_MINIMUM, "Below the 50.00 USD minimum.")
    ]


def test_preview_refuses_a_bad_minimum():
    for minimum in (0, -5, 10.5, "1000"):
        with pytest.raises(ApplicationError):
            payout_batch_preview(minimum_cents=minimum)


# --- Batches -----------------------------------------------------------------------------------------


def test_batch_pays_each_eligible_rater_exactly_their_available_balance(
    stripe_sandbox, organization, staff_user, django_capture_on_commit_callbacks
):
    raters = [onboarded(stripe_sandbox) for _ in range(3)]
    amounts = [1000, 2345, 10_000]
    for rater, cents in zip(raters, amounts, strict=True):
        earned(rater, cents, organization=organization, sandbox=stripe_sandbox)
    below, held, not_onboarded = onboarded(stripe_sandbox), onboarded(stripe_sandbox), rater_new()
    for rater in (below, held, not_onboarded):
        earned(rater, 999 if rater is below else 4000, organization=organization, sandbox=stripe_sandbox)
    payout_hold(rater=held, reason="Review", actor=staff_user)
    stripe_before = stripe_balance_in_ledger()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        batch = payout_batch_create(trigger=STAFF, actor=staff_user)

    assert len(callbacks) == 1  # sending starts once the batch is committed
    assert (batch.trigger, batch.created_by, batch.payouts_count, batch.total_cents, batch.minimum_cents) == (
        STAFF,
        staff_user,
        3,
        13_345,
        1000,
    )
    by_rater = {payout.rater_id: payout for payout in batch.payouts.all()}
    assert sorted(by_rater) == sorted(rater.pk for rater in raters)
    transfers = {transfer["destination"]: transfer for transfer in transfers_at_stripe()}
    assert len(transfers) == 3
    for rater, cents in zip(raters, amounts, strict=True):
        payout = by_rater[rater.pk]
        transfer = transfers[account_id(rater)]
        assert (payout.status, payout.amount_cents, payout.attempts, payout.last_error) == (
            PayoutStatus.SENT,
            cents,
            1,
            "",
        )
        assert payout.idempotency_key == f"payout:{batch.pk}:{rater.pk}"
        assert (transfer["id"], transfer["amount"], transfer["currency"]) == (payout.stripe_transfer_id, cents, USD)
        assert transfer["transfer_group"] == f"payout-{payout.pk}"
        assert transfer["metadata"] == {
            "payout_id": str(payout.pk),
            "batch_id": str(batch.pk),
            "rater_id": str(rater.pk),
        }
        assert payout.sent_at.timestamp() == transfer["created"]
        assert {f"payout:{payout.pk}:reserve", f"payout:{payout.pk}"} <= references()
        assert available(rater) == 0
    assert [available(rater) for rater in (below, held, not_onboarded)] == [999, 4000, 4000]
    assert in_transit() == 0
    assert stripe_balance_in_ledger() == stripe_before - 13_345
    assert stripe_sandbox.state()["platform_balance"][USD] == stripe_balance_in_ledger()
    assert Counter(AuditEvent.objects.values_list("action", flat=True))["payout.sent"] == 3
    assert AuditEvent.objects.get(action="payout.batch_create").data == {
        "trigger": STAFF,
        "currency": USD,
        "minimum_cents": 1000,
        "payouts": 3,
        "total_cents": 13_345,
    }
    assert_ledger_ok()


def test_batch_with_nobody_eligible_is_recorded_empty_and_sends_nothing(
    organization, staff_user, django_capture_on_commit_callbacks
):
    earned(rater_new(), 5000, organization=organization)  # not onboarded

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        batch = payout_batch_create(trigger=PayoutBatchTrigger.SCHEDULE, actor=None)

    assert (batch.payouts_count, batch.total_cents, batch.created_by) == (0, 0, None)
    assert callbacks == []
    assert AuditEvent.objects.get(action="payout.batch_create").actor_label == "system"
    assert_ledger_ok()


def test_batch_refuses_an_unknown_trigger_and_creates_nothing(organization, staff_user):
    with pytest.raises(ApplicationError):
        payout_batch_create(trigger="whenever", actor=staff_user)
    assert PayoutBatch.objects.count() == 0


def _connected_raters(count: int, organization) -> list:
    """Raters with active connected accounts recorded directly (no Stripe needed to create a batch)."""
    raters = []
    for _ in range(count):
        rater = rater_new()
        ConnectedAccount.objects.create(
            rater=rater, stripe_account_id=f"acct_{uuid.uuid4().hex[:16]}", transfers_capability="active"
        )
        earned(rater, 1500, organization=organization)
        raters.append(rater)
    return raters


def test_batch_creation_takes_the_same_number_of_queries_for_5_or_40_raters(organization, staff_user):
    _connected_raters(1, organization)
    payout_batch_create(trigger=STAFF, actor=staff_user)  # the first batch ever also creates ledger accounts
    counts = []
    for size in (5, 40):
        _connected_raters(size, organization)
        with CaptureQueriesContext(connection) as queries:
            batch = payout_batch_create(trigger=STAFF, actor=staff_user)
        assert batch.payouts_count == size
        counts.append(len(queries))
    assert counts[0] == counts[1]
    assert counts[0] <= 20
    assert_ledger_ok()


def test_a_second_batch_never_creates_a_second_pending_payout(organization, staff_user):
    raters = _connected_raters(3, organization)
    first = payout_batch_create(trigger=STAFF, actor=staff_user)
    for rater in raters:
        earned(rater, 700, organization=organization)  # more money, while the first payout is still pending

    second = payout_batch_create(trigger=STAFF, actor=staff_user, minimum_cents=100)

    assert (first.payouts_count, second.payouts_count) == (3, 0)
    assert Payout.objects.filter(status=PayoutStatus.PENDING).count() == 3
    assert [available(rater) for rater in raters] == [700, 700, 700]
    assert in_transit() == 4500
    assert_ledger_ok()


def test_scheduled_task_creates_a_schedule_batch(stripe_sandbox, organization, django_capture_on_commit_callbacks):
    rater = onboarded(stripe_sandbox)
    earned(rater, 3000, organization=organization, sandbox=stripe_sandbox)

    with django_capture_on_commit_callbacks(execute=True):
        batch_id = tasks.payout_batch_run_scheduled()

    batch = PayoutBatch.objects.get(pk=batch_id)
    assert (batch.trigger, batch.payouts_count, batch.total_cents) == (PayoutBatchTrigger.SCHEDULE, 1, 3000)
    assert batch.payouts.get().status == PayoutStatus.SENT
    assert transfers_per_destination() == {account_id(rater): 1}
    assert_ledger_ok()


def test_beat_runs_the_weekly_batch_the_retry_job_and_the_nightly_reconciliation():
    schedule = django_settings.CELERY_BEAT_SCHEDULE
    weekly = schedule["payments-payout-batch-weekly"]
    assert weekly["task"] == "payments.tasks.payout_batch_run_scheduled"
    assert (weekly["schedule"].day_of_week, weekly["schedule"].hour, weekly["schedule"].minute) == ({1}, {9}, {0})
    assert schedule["payments-payouts-send-due"] == {"task": "payments.tasks.payouts_send_due", "schedule": 60.0}
    nightly = schedule["payments-reconciliation-daily"]
    assert nightly["task"] == "payments.tasks.reconciliation_run"
    assert (nightly["schedule"].hour, nightly["schedule"].minute) == ({3}, {0})
    from crowdplatform.celery import app

    app.loader.import_default_modules()
    for entry in schedule.values():
        assert entry["task"] in app.tasks


# --- Failures and retries ----------------------------------------------------------------------------


def test_stripe_refusing_the_transfer_fails_the_payout_and_returns_the_money(stripe_sandbox, organization, staff_user):
    rater = onboarded(stripe_sandbox)
    earned(rater, 4200, organization=organization)  # the ledger has the money; Stripe's balance does not
    batch = payout_batch_create(trigger=STAFF, actor=staff_user)
    stripe_before = stripe_balance_in_ledger()

    payout = payout_send(payout_id=batch.payouts.get().pk)

    assert payout.status == PayoutStatus.FAILED
    assert "balance_insufficient" in payout.last_error
    assert payout.last_error.startswith("Stripe refused the transfer: You have insufficient available funds")
    assert (payout.stripe_transfer_id, payout.attempts, payout.next_attempt_at) == (None, 1, None)
    assert payout.failed_at is not None
    assert (available(rater), in_transit(), stripe_balance_in_ledger()) == (4200, 0, stripe_before)
    assert f"payout:{payout.pk}:return" in references()
    assert AuditEvent.objects.get(action="payout.fail").data == {"error": payout.last_error, "returned": True}
    assert transfers_at_stripe() == []
    # Running it again does nothing.
    assert payout_send(payout_id=payout.pk).status == PayoutStatus.FAILED
    assert payouts_send_due(now=timezone.now() + timedelta(days=1)) == 0
    assert available(rater) == 4200
    assert_ledger_ok()


def test_a_recoverable_error_backs_off_and_a_later_retry_job_sends_it(stripe_sandbox, organization, staff_user):
    rater = onboarded(stripe_sandbox)
    earned(rater, 1800, organization=organization, sandbox=stripe_sandbox)
    payout = payout_batch_create(trigger=STAFF, actor=staff_user).payouts.get()
    stripe_sandbox.fault(method="POST", path_prefix="/v1/transfers", kind="429", count=3)
    start = timezone.now()

    attempted = payout_send(payout_id=payout.pk, now=start)

    assert (attempted.status, attempted.attempts, attempted.next_attempt_at) == (
        PayoutStatus.PENDING,
        1,
        start + timedelta(minutes=1),
    )
    assert attempted.last_error.startswith("Attempt 1: Request rate limit exceeded (sandbox fault).")
    # Not due yet: nothing happens.
    assert payouts_send_due(now=start + timedelta(seconds=59)) == 0
    assert payouts_send_due(now=start + timedelta(minutes=1)) == 1
    payout.refresh_from_db()
    assert (payout.attempts, payout.next_attempt_at) == (2, start + timedelta(minutes=1 + 2))
    assert payouts_send_due(now=start + timedelta(minutes=3)) == 1
    payout.refresh_from_db()
    assert (payout.attempts, payout.next_attempt_at) == (3, start + timedelta(minutes=3 + 4))
    assert (available(rater), in_transit()) == (0, 1800)

    assert payouts_send_due(now=start + timedelta(minutes=7)) == 1

    payout.refresh_from_db()
    assert (payout.status, payout.attempts, payout.last_error, payout.next_attempt_at) == (
        PayoutStatus.SENT,
        4,
        "",
        None,
    )
    assert transfers_per_destination() == {account_id(rater): 1}
    assert (available(rater), in_transit()) == (0, 0)
    assert_ledger_ok()


def test_after_max_attempts_the_payout_fails_with_its_money_still_reserved_and_staff_retry_sends_it(
    stripe_sandbox, organization, staff_user, django_capture_on_commit_callbacks
):
    rater = onboarded(stripe_sandbox)
    earned(rater, 2000, organization=organization, sandbox=stripe_sandbox)
    payout = payout_batch_create(trigger=STAFF, actor=staff_user).payouts.get()
    stripe_sandbox.fault(method="POST", path_prefix="/v1/transfers", kind="500", count=MAX_ATTEMPTS)
    now = timezone.now()
    for _ in range(MAX_ATTEMPTS):
        now += timedelta(hours=1)
        payout_send(payout_id=payout.pk, now=now)

    payout.refresh_from_db()
    assert (payout.status, payout.attempts) == (PayoutStatus.FAILED, MAX_ATTEMPTS)
    assert "Gave up after 10 attempts" in payout.last_error
    # Stripe might have made it: the money stays reserved until someone finds out.
    assert (available(rater), in_transit()) == (0, 2000)
    assert f"payout:{payout.pk}:return" not in references()

    with django_capture_on_commit_callbacks(execute=True):
        new = payout_retry(payout=payout, actor=staff_user)

    new.refresh_from_db()
    assert (new.status, new.amount_cents, new.batch.trigger, new.batch.created_by) == (
        PayoutStatus.SENT,
        2000,
        STAFF,
        staff_user,
    )
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.FAILED
    assert f"payout:{payout.pk}:return" in references()
    assert transfers_per_destination() == {account_id(rater): 1}
    assert (available(rater), in_transit()) == (0, 0)
    actions = AuditEvent.objects.filter(action__startswith="payout.re").order_by("id").values_list("action", flat=True)
    assert list(actions) == [
        "payout.return",
        "payout.retry",
    ]
    assert_ledger_ok()


def test_staff_retry_of_a_given_up_payout_that_did_reach_stripe_records_it_instead(
    stripe_sandbox, organization, staff_user
):
    rater = onboarded(stripe_sandbox)
    earned(rater, 2000, organization=organization, sandbox=stripe_sandbox)
    payout = payout_batch_create(trigger=STAFF, actor=staff_user).payouts.get()
    # Every attempt times out after Stripe did the work (the first made the transfer, the rest replay it).
    stripe_sandbox.fault(method="POST", path_prefix="/v1/transfers", kind="timeout", count=1, delay=2.5)
    stripe_sandbox.fault(method="GET", path_prefix="/v1/transfers", kind="500", count=MAX_ATTEMPTS)
    now = timezone.now()
    for _ in range(MAX_ATTEMPTS):
        now += timedelta(hours=1)
        payout_send(payout_id=payout.pk, now=now)
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.FAILED
    # Stripe still cannot be asked (the last GET fault): the retry says so and changes nothing.
    before = (references(), Payout.objects.count(), AuditEvent.objects.count())
    with pytest.raises(ApplicationError) as unavailable:
        payout_retry(payout=payout, actor=staff_user)
    assert unavailable.value.code == "stripe_unavailable"
    assert (references(), Payout.objects.count(), AuditEvent.objects.count()) == before

    recorded = payout_retry(payout=payout, actor=staff_user)

    assert recorded.pk == payout.pk
    assert recorded.status == PayoutStatus.SENT
    assert Payout.objects.count() == 1
    assert transfers_per_destination() == {account_id(rater): 1}
    assert (available(rater), in_transit()) == (0, 0)
    assert_ledger_ok()


def test_staff_retry_of_a_refused_payout_pays_the_current_available_balance(
    stripe_sandbox, organization, staff_user, django_capture_on_commit_callbacks
):
    rater = onboarded(stripe_sandbox)
    earned(rater, 1500, organization=organization)  # Stripe's balance is short: refused
    failed = payout_send(payout_id=payout_batch_create(trigger=STAFF, actor=staff_user).payouts.get().pk)
    assert failed.status == PayoutStatus.FAILED
    earned(rater, 500, organization=organization)
    stripe_sandbox.balance_add(amount=2000, currency=USD)

    with django_capture_on_commit_callbacks(execute=True):
        new = payout_retry(payout=failed, actor=staff_user)

    new.refresh_from_db()
    assert (new.status, new.amount_cents) == (PayoutStatus.SENT, 2000)
    assert AuditEvent.objects.get(action="payout.retry").data == {
        "failed_payout": failed.pk,
        "batch": new.batch_id,
        "amount_cents": 2000,
    }
    assert [transfer["amount"] for transfer in transfers_at_stripe()] == [2000]
    assert available(rater) == 0
    assert_ledger_ok()


def test_staff_retry_refuses_clearly_and_changes_nothing(stripe_sandbox, organization, staff_user):
    rater = onboarded(stripe_sandbox)
    earned(rater, 1500, organization=organization)
    failed = payout_send(payout_id=payout_batch_create(trigger=STAFF, actor=staff_user).payouts.get().pk)
    payout_hold(rater=rater, reason="Under review", actor=staff_user)
    before = (Payout.objects.count(), PayoutBatch.objects.count(), references(), available(rater))

    with pytest.raises(ApplicationError) as held:
        payout_retry(payout=failed, actor=staff_user)

    assert held.value.code == "payout_not_eligible"
    assert held.value.message == "Cannot pay this rater now: Payouts held by staff: Under review"
    assert (Payout.objects.count(), PayoutBatch.objects.count(), references(), available(rater)) == before

    other = onboarded(stripe_sandbox)
    earned(other, 1500, organization=organization, sandbox=stripe_sandbox)
    pending = payout_batch_create(trigger=STAFF, actor=staff_user).payouts.get()
    with pytest.raises(ConflictError) as not_failed:
        payout_retry(payout=pending, actor=staff_user)
    assert not_failed.value.code == "payout_not_failed"
    assert_ledger_ok()


# --- Webhooks: payout.paid and transfer.reversed -----------------------------------------------------


def test_payout_paid_marks_the_accounts_payouts_sent_before_it_paid_and_only_those(
    stripe_sandbox, organization, staff_user
):
    stripe_sandbox.configure(auto_connected_payouts=False)
    rater, other = onboarded(stripe_sandbox), onboarded(stripe_sandbox)
    sent = []
    for _ in range(2):
        for someone in (rater, other):
            earned(someone, 3000, organization=organization, sandbox=stripe_sandbox)
        batch = payout_batch_create(trigger=STAFF, actor=staff_user)
        payout_batch_send(batch_id=batch.pk)
        sent.append(batch.payouts.get(rater=rater))
    first, second = sent
    Payout.objects.filter(pk=first.pk).update(sent_at=timezone.now() - timedelta(hours=2))
    paid_at = timezone.now() - timedelta(hours=1)
    account = ConnectedAccount.objects.get(rater=rater)
    event = StripeEvent.objects.create(
        event_id="evt_paid_1",
        endpoint="connect",
        type="payout.paid",
        account=account.stripe_account_id,
        stripe_created=paid_at,
        payload={},
    )

    payouts.on_connected_payout_paid(event, {"id": "po_1", "object": "payout"})
    payouts.on_connected_payout_paid(event, {"id": "po_1", "object": "payout"})  # again: nothing new

    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.paid_at) == (PayoutStatus.PAID, paid_at)
    assert (second.status, second.paid_at) == (PayoutStatus.SENT, None)
    assert set(Payout.objects.filter(rater=other).values_list("status", flat=True)) == {PayoutStatus.SENT}
    account.refresh_from_db()
    assert account.paid_through == paid_at
    older = StripeEvent(
        event_id="evt_paid_0",
        endpoint="connect",
        type="payout.paid",
        account=account.stripe_account_id,
        stripe_created=paid_at - timedelta(hours=5),
        payload={},
    )
    payouts.on_connected_payout_paid(older, {"id": "po_0", "object": "payout"})
    account.refresh_from_db()
    assert account.paid_through == paid_at  # never goes back
    assert [a.data["payouts"] for a in AuditEvent.objects.filter(action="payout.paid")] == [[first.pk]]
    assert_ledger_ok()


def test_payout_paid_for_an_account_that_is_not_ours_is_ignored():
    event = StripeEvent(
        event_id="evt_x",
        endpoint="connect",
        type="payout.paid",
        account="acct_stranger",
        stripe_created=timezone.now(),
        payload={},
    )
    with pytest.raises(EventIgnored):
        payouts.on_connected_payout_paid(event, {"id": "po_x"})


def test_payout_paid_delivered_through_the_sandbox_queue(stripe_sandbox, organization, staff_user, client):
    rater = onboarded(stripe_sandbox)
    earned(rater, 3000, organization=organization, sandbox=stripe_sandbox)
    batch = payout_batch_create(trigger=STAFF, actor=staff_user)
    payout_batch_send(batch_id=batch.pk)

    deliver_all(client, stripe_sandbox)

    payout = batch.payouts.get()
    account = ConnectedAccount.objects.get(rater=rater)
    paid_event = StripeEvent.objects.get(type="payout.paid")
    assert (payout.status, payout.paid_at, account.paid_through) == (
        PayoutStatus.PAID,
        paid_event.stripe_created,
        paid_event.stripe_created,
    )
    assert paid_event.account == account.stripe_account_id
    assert AuditEvent.objects.get(action="payout.paid").data["payouts"] == [payout.pk]
    assert_ledger_ok()


def test_a_transfer_recorded_after_its_payout_paid_arrived_is_paid_at_once(
    stripe_sandbox, organization, staff_user, client
):
    rater = onboarded(stripe_sandbox)
    earned(rater, 3000, organization=organization, sandbox=stripe_sandbox)
    payout = payout_batch_create(trigger=STAFF, actor=staff_user).payouts.get()
    stripe_sandbox.take_deliveries()
    # Stripe makes the transfer but its answer never reaches us; the rater's bank payout is reported.
    stripe_sandbox.fault(method="POST", path_prefix="/v1/transfers", kind="timeout", delay=2.5)
    start = timezone.now()
    assert payout_send(payout_id=payout.pk, now=start).status == PayoutStatus.PENDING
    deliver_all(client, stripe_sandbox)
    assert ConnectedAccount.objects.get(rater=rater).paid_through is not None

    payouts_send_due(now=start + timedelta(minutes=1))

    payout.refresh_from_db()
    assert payout.status == PayoutStatus.PAID
    assert payout.paid_at == ConnectedAccount.objects.get(rater=rater).paid_through
    assert transfers_per_destination() == {account_id(rater): 1}
    assert_ledger_ok()


def _sent_payout(sandbox, organization, staff_user, cents: int = 2600):
    sandbox.configure(auto_connected_payouts=False)  # keep the money on the account, so it can be reversed
    rater = onboarded(sandbox)
    earned(rater, cents, organization=organization, sandbox=sandbox)
    batch = payout_batch_create(trigger=STAFF, actor=staff_user)
    payout_batch_send(batch_id=batch.pk)
    sandbox.take_deliveries()
    return rater, batch.payouts.get()


def test_staff_reversal_takes_the_money_back_and_the_webhook_then_changes_nothing(
    stripe_sandbox, organization, staff_user, client
):
    rater, payout = _sent_payout(stripe_sandbox, organization, staff_user)
    stripe_before = stripe_balance_in_ledger()
    with pytest.raises(ApplicationError) as no_reason:
        payout_reverse(payout=payout, actor=staff_user, reason="")
    assert no_reason.value.code == "reason_required"

    reversed_payout = payout_reverse(payout=payout, actor=staff_user, reason="Paid for fraudulent work")

    assert reversed_payout.status == PayoutStatus.REVERSED
    assert reversed_payout.reversed_at is not None
    assert (available(rater), stripe_balance_in_ledger()) == (2600, stripe_before + 2600)
    assert f"payout:{payout.pk}:reversal" in references()
    transfer = stripe_api.transfers_find(transfer_group=f"payout-{payout.pk}")[0]
    assert (transfer["reversed"], transfer["amount_reversed"]) == (True, 2600)
    audit = AuditEvent.objects.get(action="payout.reverse")
    assert (audit.actor_user_id, audit.data["reason"], audit.data["amount_cents"]) == (
        staff_user.pk,
        "Paid for fraudulent work",
        2600,
    )
    transactions = LedgerTransaction.objects.count()

    deliver_all(client, stripe_sandbox)  # transfer.reversed
    # And staff pressing the button twice: Stripe replays the reversal, nothing moves.
    with pytest.raises(ConflictError):
        payout_reverse(payout=payout, actor=staff_user, reason="again")

    assert StripeEvent.objects.get(type="transfer.reversed").status == StripeEventStatus.PROCESSED
    assert LedgerTransaction.objects.count() == transactions
    assert available(rater) == 2600
    assert stripe_sandbox.state()["platform_balance"][USD] == stripe_balance_in_ledger()
    assert_ledger_ok()


def test_a_reversal_made_at_stripe_is_recorded_from_the_webhook(stripe_sandbox, organization, staff_user, client):
    rater, payout = _sent_payout(stripe_sandbox, organization, staff_user)
    # From Stripe's Dashboard: we did not ask for it.
    response = requests.post(
        f"{stripe_sandbox.base_url}/v1/transfers/{payout.stripe_transfer_id}/reversals",
        headers={"Authorization": "Bearer sk_test_sandbox"},
        timeout=5,
    )
    assert response.status_code == 200

    deliver_all(client, stripe_sandbox)
    deliver_all(client, stripe_sandbox)  # nothing left; a redelivery below
    event = StripeEvent.objects.get(type="transfer.reversed")

    payout.refresh_from_db()
    assert (payout.status, event.status) == (PayoutStatus.REVERSED, StripeEventStatus.PROCESSED)
    assert available(rater) == 2600
    assert AuditEvent.objects.get(action="payout.reverse").data == {
        "transfer": payout.stripe_transfer_id,
        "amount_cents": 2600,
        "event": event.event_id,
    }
    assert stripe_sandbox.state()["platform_balance"][USD] == stripe_balance_in_ledger()
    assert_ledger_ok()


def test_transfer_reversed_for_a_transfer_we_have_not_recorded_yet_is_deferred(stripe_sandbox, client):
    stripe_sandbox.configure(auto_connected_payouts=False)
    stripe_sandbox.balance_add(amount=5000, currency=USD)
    destination = stripe_api.account_create(email="r@example.org", idempotency_key="acct-x", metadata={})["id"]
    stripe_sandbox.account_onboard(account_id=destination)
    transfer = stripe_api.transfer_create(
        amount=1000, currency=USD, destination=destination, idempotency_key="tr-x", transfer_group="g", metadata={}
    )
    stripe_api.transfer_reverse(transfer_id=transfer["id"], idempotency_key="tr-x-reverse")

    deliver_all(client, stripe_sandbox)

    event = StripeEvent.objects.get(type="transfer.reversed")
    assert event.status == StripeEventStatus.DEFERRED
    assert event.error == f"No payout records transfer {transfer['id']} yet."
    assert not LedgerTransaction.objects.exists()


def test_transfer_reversed_handler_called_directly_defers_then_applies(stripe_sandbox, organization, staff_user):
    rater, payout = _sent_payout(stripe_sandbox, organization, staff_user)
    obj = {"id": "tr_unknown", "object": "transfer", "amount_reversed": 100}
    event = StripeEvent(event_id="evt_x", endpoint="platform", type="transfer.reversed", stripe_created=timezone.now())
    with pytest.raises(EventDeferred):
        payouts.on_transfer_reversed(event, obj)

    payouts.on_transfer_reversed(event, {**obj, "id": payout.stripe_transfer_id, "amount_reversed": 2600})
    payouts.on_transfer_reversed(event, {**obj, "id": payout.stripe_transfer_id, "amount_reversed": 2600})

    payout.refresh_from_db()
    assert payout.status == PayoutStatus.REVERSED
    assert available(rater) == 2600
    assert LedgerTransaction.objects.filter(reference=f"payout:{payout.pk}:reversal").count() == 1
    assert_ledger_ok()


def test_reversing_a_payout_that_was_not_sent_is_refused(stripe_sandbox, organization, staff_user):
    rater = onboarded(stripe_sandbox)
    earned(rater, 1500, organization=organization, sandbox=stripe_sandbox)
    payout = payout_batch_create(trigger=STAFF, actor=staff_user).payouts.get()
    before = references()

    with pytest.raises(ConflictError) as refused:
        payout_reverse(payout=payout, actor=staff_user, reason="mistake")

    assert refused.value.code == "payout_not_reversible"
    assert references() == before
    assert Payout.objects.get().status == PayoutStatus.PENDING


def test_a_reversal_stripe_refuses_changes_nothing(stripe_sandbox, organization, staff_user):
    # The sandbox pays transfers out to the rater's bank at once: nothing is left to take back.
    rater = onboarded(stripe_sandbox)
    earned(rater, 2600, organization=organization, sandbox=stripe_sandbox)
    batch = payout_batch_create(trigger=STAFF, actor=staff_user)
    payout_batch_send(batch_id=batch.pk)
    payout = batch.payouts.get()
    before = (references(), available(rater), AuditEvent.objects.count())

    with pytest.raises(ApplicationError) as refused:
        payout_reverse(payout=payout, actor=staff_user, reason="Fraud")

    assert refused.value.code == "reversal_refused"
    assert "balance_insufficient" in refused.value.message
    assert Payout.objects.get().status == PayoutStatus.SENT
    assert (references(), available(rater), AuditEvent.objects.count()) == before
    assert_ledger_ok()
