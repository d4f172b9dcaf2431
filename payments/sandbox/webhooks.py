"""Webhook endpoints, Stripe-style signatures, and delivery (queued for tests, or POSTed in the background).

Signing is done here with hmac, not with the SDK, so the sandbox runs without `stripe` installed:
`Stripe-Signature: t=<unix>,v1=<hex hmac_sha256(secret, f"{t}.{payload}")>`.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import itertools
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from payments.sandbox.engine import new_id

# Stripe retries failed deliveries with backoff; the sandbox does the same, briefly.
RETRY_DELAYS_SECONDS = (1.0, 2.0, 4.0)
DELIVERY_TIMEOUT_SECONDS = 10.0
_LOG_SIZE = 200


@dataclass(frozen=True)
class WebhookEndpoint:
    id: str
    url: str | None
    secret: str
    connect: bool

    def wants(self, event: dict[str, Any]) -> bool:
        # Connect endpoints receive events from connected accounts (those with `account`); platform
        # endpoints receive the platform's own events.
        return ("account" in event) == self.connect


@dataclass(frozen=True)
class Delivery:
    """One signed webhook request, as Stripe would send it to one endpoint."""

    connect: bool
    event_id: str
    event_type: str
    payload: bytes
    headers: dict[str, str]
    url: str | None = None
    endpoint_id: str = ""


@dataclass(order=True)
class _Attempt:
    due: float
    order: int
    endpoint: WebhookEndpoint = field(compare=False)
    event_id: str = field(compare=False)
    event_type: str = field(compare=False)
    payload: bytes = field(compare=False)
    attempt: int = field(compare=False, default=0)


def signature_header(*, payload: bytes, secret: str, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def delivery_headers(*, payload: bytes, secret: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "Stripe-Signature": signature_header(payload=payload, secret=secret),
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
    }


def post(*, url: str, payload: bytes, headers: dict[str, str], timeout: float = DELIVERY_TIMEOUT_SECONDS) -> int:
    """POST one delivery; returns the HTTP status, or 0 when nothing answered."""
    if not url.startswith(("http://", "https://")):
        return 0
    request = urllib.request.Request(url, data=payload, headers=headers, method="POST")  # noqa: S310 - scheme checked above
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - scheme checked above
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, ValueError):
        return 0


class Dispatcher:
    """Fans each event out to the endpoints that want it: queued (tests) or POSTed by a worker thread."""

    def __init__(self, *, auto_deliver: bool, log: Callable[[str], None] | None = None) -> None:
        self.auto_deliver = auto_deliver
        self._log = log or (lambda _message: None)
        self._lock = threading.Condition()
        self._endpoints: list[WebhookEndpoint] = []
        self._queued: list[Delivery] = []
        self._schedule: list[_Attempt] = []
        self._order = itertools.count()
        self._history: list[dict[str, Any]] = []
        self._stopping = False
        self._worker: threading.Thread | None = None

    # --- endpoints ---------------------------------------------------------------------------------

    def register(self, *, url: str | None, secret: str, connect: bool) -> WebhookEndpoint:
        endpoint = WebhookEndpoint(id=new_id("we"), url=url, secret=secret, connect=connect)
        with self._lock:
            self._endpoints.append(endpoint)
        return endpoint

    def endpoints(self) -> list[WebhookEndpoint]:
        with self._lock:
            return list(self._endpoints)

    def clear(self, *, endpoints: bool) -> None:
        with self._lock:
            self._queued.clear()
            self._schedule.clear()
            self._history.clear()
            if endpoints:
                self._endpoints.clear()

    # --- events ------------------------------------------------------------------------------------

    def event_created(self, event: dict[str, Any]) -> None:
        """Called by the engine for each new event (engine lock held): must not block."""
        with self._lock:
            targets = [endpoint for endpoint in self._endpoints if endpoint.wants(event)]
            event["pending_webhooks"] = len(targets)
            payload = json.dumps(event, indent=2).encode()
            for endpoint in targets:
                if self.auto_deliver:
                    if endpoint.url is not None:
                        self._schedule_attempt(endpoint, event, payload, attempt=0, due=time.monotonic())
                else:
                    self._queued.append(self._delivery(endpoint, event["id"], event["type"], payload))
            self._lock.notify_all()

    def _delivery(self, endpoint: WebhookEndpoint, event_id: str, event_type: str, payload: bytes) -> Delivery:
        return Delivery(
            connect=endpoint.connect,
            event_id=event_id,
            event_type=event_type,
            payload=payload,
            headers=delivery_headers(payload=payload, secret=endpoint.secret),
            url=endpoint.url,
            endpoint_id=endpoint.id,
        )

    def take(self) -> list[Delivery]:
        with self._lock:
            taken, self._queued = self._queued, []
        return taken

    def deliver_queued(self) -> list[dict[str, Any]]:
        """POST every queued delivery that has a URL, once, now; those without a URL stay queued."""
        with self._lock:
            sendable = [delivery for delivery in self._queued if delivery.url is not None]
            self._queued = [delivery for delivery in self._queued if delivery.url is None]
        results = []
        for delivery in sendable:
            # Re-sign at send time, as Stripe does for each attempt, so the timestamp is fresh.
            endpoint = self._endpoint(delivery.endpoint_id)
            headers = delivery.headers
            if endpoint is not None:
                headers = delivery_headers(payload=delivery.payload, secret=endpoint.secret)
            status = post(url=delivery.url or "", payload=delivery.payload, headers=headers)
            results.append(self._record(delivery.event_id, delivery.event_type, delivery.url, status, attempt=1))
        return results

    def _endpoint(self, endpoint_id: str) -> WebhookEndpoint | None:
        with self._lock:
            return next((endpoint for endpoint in self._endpoints if endpoint.id == endpoint_id), None)

    def history(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._history)

    def queued_count(self) -> int:
        with self._lock:
            return len(self._queued)

    def _record(self, event_id: str, event_type: str, url: str | None, status: int, *, attempt: int) -> dict[str, Any]:
        entry = {"event_id": event_id, "event_type": event_type, "url": url, "status": status, "attempt": attempt}
        with self._lock:
            self._history.append(entry)
            del self._history[:-_LOG_SIZE]
        self._log(f"webhook {event_type} {event_id} -> {url}: {status or 'no answer'} (attempt {attempt})")
        return entry

    # --- background delivery -----------------------------------------------------------------------

    def _schedule_attempt(
        self, endpoint: WebhookEndpoint, event: dict[str, Any], payload: bytes, *, attempt: int, due: float
    ) -> None:
        item = _Attempt(
            due=due,
            order=next(self._order),
            endpoint=endpoint,
            event_id=event["id"],
            event_type=event["type"],
            payload=payload,
            attempt=attempt,
        )
        heapq.heappush(self._schedule, item)

    def start(self) -> None:
        if not self.auto_deliver or self._worker is not None:
            return
        self._stopping = False
        self._worker = threading.Thread(target=self._run, name="stripe-sandbox-webhooks", daemon=True)
        self._worker.start()

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        if self._worker is not None:
            self._worker.join(timeout=DELIVERY_TIMEOUT_SECONDS + 1)
            self._worker = None

    def _run(self) -> None:
        while True:
            item = self._next_due()
            if item is None:
                return
            url = item.endpoint.url or ""
            headers = delivery_headers(payload=item.payload, secret=item.endpoint.secret)
            status = post(url=url, payload=item.payload, headers=headers)
            self._record(item.event_id, item.event_type, url, status, attempt=item.attempt + 1)
            if not 200 <= status < 300 and item.attempt < len(RETRY_DELAYS_SECONDS):
                with self._lock:
                    item.due = time.monotonic() + RETRY_DELAYS_SECONDS[item.attempt]
                    item.attempt += 1
                    item.order = next(self._order)
                    heapq.heappush(self._schedule, item)

    def _next_due(self) -> _Attempt | None:
        with self._lock:
            while not self._stopping:
                if self._schedule and self._schedule[0].due <= time.monotonic():
                    return heapq.heappop(self._schedule)
                timeout = self._schedule[0].due - time.monotonic() if self._schedule else None
                self._lock.wait(timeout)
            return None
