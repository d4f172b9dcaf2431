"""Stripe webhooks: verify, store by event id, then handle.

Handlers live with the domain they serve (funding, connect, payouts) and register here with
`@handles(...)`; `HANDLER_MODULES` are imported before dispatching so the registry is full.
A handler that finds the event refers to something not recorded yet (out-of-order
delivery) raises `EventDeferred`; the event is handled again later.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from payments import stripe_api
from payments.models import StripeEvent, StripeEventStatus, WebhookEndpoint

Handler = Callable[[StripeEvent, dict[str, Any]], None]  # (stored event, event["data"]["object"])
HANDLERS: dict[tuple[str, str], Handler] = {}
HANDLER_MODULES = ("payments.funding", "payments.connect", "payments.payouts")


class EventDeferred(Exception):
    """The event refers to something not recorded yet; handle it again later."""


def handles(*types: str, endpoint: str = WebhookEndpoint.PLATFORM) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        for event_type in types:
            HANDLERS[(endpoint, event_type)] = handler
        return handler

    return register


def handlers_load() -> None:
    for module in HANDLER_MODULES:
        importlib.import_module(module)


# --- Receiving, storing and dispatching (filled in below) -------------------------------------------

logger = logging.getLogger(__name__)

# A deferred or failed event is tried again (by `events_retry_pending`, every 5 minutes) this many
# times in all, for at most Stripe's own retry window; after that it waits for staff.
EVENT_MAX_ATTEMPTS = 30
EVENT_RETRY_WINDOW = timedelta(days=3)
# An event still "received" this long after it arrived was stored by a process that died before
# handling it (the store commits first); the retry job picks it up.
EVENT_STUCK_AFTER = timedelta(minutes=5)

_DONE = frozenset({StripeEventStatus.PROCESSED, StripeEventStatus.IGNORED})
_ERROR_TEXT_MAX = 4000


class EventIgnored(Exception):
    """The event is about something that is not ours (a session we never created): record it as
    ignored, with the exception's message as the note."""


@dataclass(frozen=True)
class WebhookResult:
    """What the webhook view answers: the HTTP status, a short reason, and the stored event."""

    status_code: int
    detail: str
    event: StripeEvent | None = None


def webhook_secret(endpoint: str) -> str:
    """The signing secret of the endpoint: Connect events are signed with their own secret."""
    if endpoint == WebhookEndpoint.PLATFORM:
        return settings.STRIPE_WEBHOOK_SECRET
    if endpoint == WebhookEndpoint.CONNECT:
        return settings.STRIPE_CONNECT_WEBHOOK_SECRET
    raise ValueError(f"Unknown webhook endpoint {endpoint!r}.")


def webhook_receive(*, payload: bytes, sig_header: str, endpoint: str) -> WebhookResult:
    """Verify a delivery, store its event by id, then handle it.

    400 for anything not signed by Stripe for this endpoint within the tolerance (nothing is
    stored); 200 once the event is processed, ignored (a type we do not handle), deferred (we
    retry it ourselves) or was already done; 500 when its handler failed, so Stripe retries too.
    """
    secret = webhook_secret(endpoint)
    try:
        event = stripe_api.event_construct(
            payload=payload,
            sig_header=sig_header,
            secret=secret,
            tolerance=settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS,
        )
    except stripe_api.SignatureError as exc:  # missing, forged, stale, or a body that is not an event
        logger.warning("Stripe webhook (%s) refused: %s", endpoint, exc)
        return WebhookResult(400, "Invalid signature or payload.")
    problem = _shape_problem(event)
    if problem:
        logger.warning("Stripe webhook (%s) refused: %s", endpoint, problem)
        return WebhookResult(400, problem)
    stored = event_process(event=event, endpoint=endpoint)
    if stored.status == StripeEventStatus.FAILED:
        return WebhookResult(500, "The event could not be handled; it is recorded and will be retried.", stored)
    return WebhookResult(200, stored.get_status_display(), stored)


def event_process(*, event: dict[str, Any], endpoint: str) -> StripeEvent:
    """Store `event` (unless already stored) and handle it, unless it was already handled.

    Used for verified webhook deliveries and for events fetched from the Stripe API (trusted:
    they came from Stripe over our authenticated connection). A duplicate of a processed or
    ignored event changes nothing; a duplicate of a deferred or failed one is handled again.
    """
    stored, _created = _store(event, endpoint)
    if stored.status in _DONE:
        return stored
    return _dispatch(stored.pk)


def events_retry_pending(*, now: datetime | None = None) -> int:
    """Handle again the deferred and failed events (and those stuck in "received"), oldest
    Stripe time first so that an event's prerequisites go before it. Returns how many are
    now done (processed or ignored)."""
    now = now or timezone.now()
    pending = (
        StripeEvent.objects.filter(
            Q(status__in=[StripeEventStatus.DEFERRED, StripeEventStatus.FAILED])
            | Q(status=StripeEventStatus.RECEIVED, received_at__lte=now - EVENT_STUCK_AFTER),
            attempts__lt=EVENT_MAX_ATTEMPTS,
            received_at__gte=now - EVENT_RETRY_WINDOW,
        )
        .order_by("stripe_created", "id")
        .values_list("pk", flat=True)
    )
    done = 0
    for pk in list(pending):
        if _dispatch(pk).status in _DONE:
            done += 1
    return done


def events_retry_after_commit() -> None:
    """Once this transaction commits (a funding was credited), retry the events that were waiting
    for it: a refund or dispute that arrived before the payment it reverses."""
    from payments.tasks import stripe_events_retry

    transaction.on_commit(stripe_events_retry.delay, robust=True)


def events_sync(
    *, types: Sequence[str] | None = None, created_gte: int | datetime | None = None, account_id: str | None = None
) -> int:
    """Fetch events from the Stripe API and process each one (a stored one is a no-op): the
    fallback when webhooks cannot reach us, and how `seed_demo` works without a public URL.
    `account_id` lists a connected account's (Connect) events. Returns how many were new."""
    if isinstance(created_gte, datetime):
        created_gte = int(created_gte.timestamp())
    events = list(
        stripe_api.events_list(types=list(types) if types else None, created_gte=created_gte, account_id=account_id)
    )
    # Oldest first, as they happened (Stripe lists newest first), so prerequisites go first.
    events.sort(key=lambda event: (event.get("created", 0), event.get("id", "")))
    known = set(
        StripeEvent.objects.filter(event_id__in=[event.get("id") for event in events]).values_list(
            "event_id", flat=True
        )
    )
    new = 0
    for event in events:
        problem = _shape_problem(event)
        if problem:
            logger.warning("Stripe event sync skipped an event: %s", problem)
            continue
        connect = account_id is not None or bool(event.get("account"))
        event_process(event=event, endpoint=WebhookEndpoint.CONNECT if connect else WebhookEndpoint.PLATFORM)
        new += event["id"] not in known
    return new


# --- Internals ------------------------------------------------------------------------------------


def _shape_problem(event: object) -> str | None:
    """Why `event` is not a Stripe event we can store, or None."""
    if not isinstance(event, dict):
        return "The payload is not a JSON object."
    if not isinstance(event.get("id"), str) or not event["id"].startswith("evt_") or len(event["id"]) > 255:
        return "The event has no valid id."
    if not isinstance(event.get("type"), str) or not event["type"] or len(event["type"]) > 100:
        return "The event has no valid type."
    created = event.get("created")
    if isinstance(created, bool) or not isinstance(created, int):
        return "The event has no valid creation time."
    data = event.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        return "The event has no data object."
    return None


def _store(event: dict[str, Any], endpoint: str) -> tuple[StripeEvent, bool]:
    """Insert the event (the unique event id makes a duplicate fail) in its own transaction, so the
    record survives whatever its handler does. Returns (row, created)."""
    try:
        with transaction.atomic():
            stored = StripeEvent.objects.create(
                event_id=event["id"],
                endpoint=endpoint,
                type=event["type"],
                account=str(event.get("account") or "")[:255],
                stripe_created=datetime.fromtimestamp(event["created"], tz=UTC),
                livemode=bool(event.get("livemode", False)),
                payload=event,
            )
        return stored, True
    except IntegrityError:
        return StripeEvent.objects.get(event_id=event["id"]), False


def _dispatch(pk: int) -> StripeEvent:
    """Run the event's handler once, in one transaction with the event's new status.

    The event row is locked first, so two deliveries of one event (or a delivery and the retry
    job) never handle it twice; the handler runs in a savepoint, so a failure undoes only its
    own writes and the failure itself is still recorded.
    """
    handlers_load()
    with transaction.atomic():
        stored = StripeEvent.objects.select_for_update().get(pk=pk)
        if stored.status in _DONE:
            return stored
        handler = HANDLERS.get((stored.endpoint, stored.type))
        stored.attempts += 1
        if handler is None:
            _finish(stored, StripeEventStatus.IGNORED, "")
            return stored
        try:
            with transaction.atomic():
                handler(stored, stored.payload["data"]["object"])
        except EventDeferred as exc:
            _finish(stored, StripeEventStatus.DEFERRED, str(exc) or "Waiting for an earlier event.")
        except EventIgnored as exc:
            _finish(stored, StripeEventStatus.IGNORED, str(exc))
        except Exception as exc:
            # Any other error: recorded for staff, answered with 500 so Stripe retries, and retried
            # by us as well. The savepoint already undid the handler's writes.
            logger.exception("Stripe event %s (%s) failed", stored.event_id, stored.type)
            _finish(stored, StripeEventStatus.FAILED, f"{type(exc).__name__}: {exc}"[:_ERROR_TEXT_MAX])
        else:
            _finish(stored, StripeEventStatus.PROCESSED, "")
    return stored


def _finish(stored: StripeEvent, status: str, error: str) -> None:
    stored.status = status
    stored.error = error
    if status in _DONE:
        stored.processed_at = timezone.now()
    stored.save(update_fields=["status", "error", "attempts", "processed_at"])
