"""Celery tasks for payments: thin wrappers that take ids and call domain functions.

Each is idempotent (postings have unique references; state changes are conditional), so a
retried or duplicated task does no harm. Only recoverable errors are retried.
"""

from __future__ import annotations

from celery import Task, shared_task
from django.utils import timezone

from payments import funds

# --- Funds and earnings ---------------------------------------------------------------------------


@shared_task
def studies_pause_unfunded(organization_id: int) -> int:
    return len(funds.studies_pause_unfunded(organization_id=organization_id))


@shared_task
def earnings_release_due() -> int:
    """Pending pay past its review window becomes available (beat: every 15 minutes)."""
    from payments.earnings import earnings_release_due as release

    return release()


@shared_task
def floor_topups_run() -> int:
    """Top up raters whose effective hourly rate is below their study's floor (beat: hourly)."""
    from payments.earnings import floor_topups_run as run

    return run()


# --- Webhooks and funding (payments/webhooks.py, payments/funding.py) -------------------------------


@shared_task
def stripe_events_retry() -> int:
    """Handle again the Stripe events that were deferred or failed (beat: every 5 minutes).
    Never raises for one event: each failure is recorded on its event."""
    from payments.webhooks import events_retry_pending

    return events_retry_pending()


@shared_task(bind=True, max_retries=5)
def stripe_events_sync(self: Task, created_gte: int | None = None) -> int:
    """Fetch Stripe's recent events and process those we missed (webhooks unreachable, demo)."""
    from payments import stripe_api
    from payments.webhooks import EVENT_RETRY_WINDOW, events_sync

    if created_gte is None:
        created_gte = int((timezone.now() - EVENT_RETRY_WINDOW).timestamp())
    try:
        return events_sync(created_gte=created_gte)
    except stripe_api.StripeRecoverableError as exc:
        raise self.retry(exc=exc, countdown=60 * 2**self.request.retries) from exc


# --- Connect, payouts and reconciliation (payments/connect.py, payouts.py, reconciliation.py) -------


@shared_task
def payout_batch_run_scheduled() -> int:
    """The weekly payout batch (beat): every eligible rater's available balance. Returns the batch id."""
    from payments.models import PayoutBatchTrigger
    from payments.payouts import payout_batch_create

    return payout_batch_create(trigger=PayoutBatchTrigger.SCHEDULE, actor=None).pk


@shared_task
def payout_batch_send(batch_id: int) -> int:
    """Send a batch's pending payouts. Stripe errors are handled per payout (backoff, failure), so
    this never retries itself; what it leaves pending the retry job picks up."""
    from payments.payouts import payout_batch_send as send

    return send(batch_id=batch_id)


@shared_task
def payouts_send_due() -> int:
    """Retry job (beat, every minute): pending payouts whose next attempt is due."""
    from payments.payouts import payouts_send_due as send_due

    return send_due()


@shared_task
def payout_send(payout_id: int) -> str:
    from payments.payouts import payout_send as send

    return send(payout_id=payout_id).status


@shared_task
def reconciliation_run() -> int:
    """Daily comparison of the ledger with Stripe (beat). Returns the run id; staff are mailed
    about mismatches, and a Stripe outage is recorded on the run rather than raised."""
    from payments.reconciliation import reconcile

    return reconcile().pk
