"""The platform's only door to Stripe: the one module that imports `stripe`.

Everything else calls these functions and gets plain dicts and lists back, never SDK objects, so
the SDK can be upgraded (or the API version moved) by changing this file alone. Errors come back
as our own three classes, sorted by what the caller should do next:

- StripeRecoverableError: Stripe may not have answered, or asked us to wait. Retry later with the
  SAME idempotency key: if Stripe did the work, the retry replays its result instead of repeating it.
- StripePermanentError: Stripe understood and said no. Retrying the same request won't help.
- SignatureError: a webhook we must not trust.

Settings (crowdplatform/settings.py): STRIPE_SECRET_KEY, STRIPE_API_BASE (the local sandbox unless
real keys are configured), STRIPE_TIMEOUT_SECONDS, STRIPE_MAX_NETWORK_RETRIES,
STRIPE_CONNECT_COUNTRY, STRIPE_WEBHOOK_TOLERANCE_SECONDS.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

import stripe
from django.conf import settings

# Pinned, so an SDK upgrade can't silently change the shape of what Stripe sends us.
API_VERSION = "2026-10-28.endive"
_PAGE_SIZE = 100


class StripeError(Exception):
    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        http_status: int | None = None,
        request_id: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.http_status = http_status
        self.request_id = request_id
        self.param = param

    def __str__(self) -> str:
        details = ", ".join(
            f"{name}={value}"
            for name, value in (("code", self.code), ("status", self.http_status), ("request", self.request_id))
            if value is not None
        )
        return f"{self.message} ({details})" if details else self.message


class StripeRecoverableError(StripeError):
    """Worth retrying later with the same idempotency key: network trouble, timeouts, 429, 5xx, 409."""


class StripePermanentError(StripeError):
    """Retrying won't help: invalid request, card declined, bad credentials, idempotency key misuse."""


class SignatureError(Exception):
    """A webhook whose Stripe-Signature is missing, forged or too old, or whose body isn't an event."""


# --- the client ------------------------------------------------------------------------------------


class _ClientConfig(NamedTuple):
    api_key: str
    api_base: str
    timeout: float
    max_network_retries: int


def _client() -> stripe.StripeClient:
    config = _ClientConfig(
        api_key=settings.STRIPE_SECRET_KEY,
        api_base=settings.STRIPE_API_BASE.rstrip("/"),
        timeout=float(settings.STRIPE_TIMEOUT_SECONDS),
        max_network_retries=int(settings.STRIPE_MAX_NETWORK_RETRIES),
    )
    return _client_for(config)


@functools.lru_cache(maxsize=8)
def _client_for(config: _ClientConfig) -> stripe.StripeClient:
    """One client per distinct configuration, so tests that override settings get a fresh one."""
    if config.api_base == stripe.DEFAULT_API_BASE.rstrip("/"):
        bases = {
            "api": stripe.DEFAULT_API_BASE,
            "connect": stripe.DEFAULT_CONNECT_API_BASE,
            "files": stripe.DEFAULT_UPLOAD_API_BASE,
        }
    else:
        # The sandbox serves every Stripe host from one address.
        bases = {"api": config.api_base, "connect": config.api_base, "files": config.api_base}
    return stripe.StripeClient(
        config.api_key,
        base_addresses=bases,
        stripe_version=API_VERSION,
        max_network_retries=config.max_network_retries,
        http_client=stripe.RequestsClient(timeout=config.timeout),
    )


def _plain(value: Any) -> Any:
    """SDK objects to plain dicts and lists, all the way down."""
    if isinstance(value, stripe.StripeObject):
        value = value.to_dict(recursive=True)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except stripe.StripeError as exc:
        raise _translate(exc) from exc


def _translate(exc: stripe.StripeError) -> StripeError:
    status = exc.http_status
    body_error = exc.json_body.get("error") if isinstance(exc.json_body, dict) else None
    body_error = body_error if isinstance(body_error, dict) else {}
    code = exc.code or body_error.get("code")
    if isinstance(exc, stripe.IdempotencyError) and code is None:
        code = "idempotency_error"
    details = {
        "message": exc.user_message or str(exc) or type(exc).__name__,
        "code": code,
        "http_status": status,
        "request_id": exc.request_id,
        "param": body_error.get("param"),
    }
    recoverable = (
        isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError)
        or (status is not None and (status >= 500 or status == 409))
        # APIError without a 4xx status: Stripe (or something in front of it) failed mid-way.
        or (isinstance(exc, stripe.APIError) and (status is None or not 400 <= status < 500))
    )
    return StripeRecoverableError(**details) if recoverable else StripePermanentError(**details)


def _paginate(fetch: Callable[[], Any]) -> Iterator[dict[str, Any]]:
    """Every item of a list, following `has_more` page by page (errors surface as they're met)."""
    with _translated():
        for item in fetch().auto_paging_iter():
            yield _plain(item)


def _options(idempotency_key: str | None = None, account_id: str | None = None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if idempotency_key is not None:
        options["idempotency_key"] = idempotency_key
    if account_id is not None:
        options["stripe_account"] = account_id
    return options


def _created(created_gte: int | None) -> dict[str, Any]:
    return {"created": {"gte": created_gte}} if created_gte is not None else {}


# --- Connect accounts ------------------------------------------------------------------------------


def account_create(*, email: str, idempotency_key: str, metadata: dict[str, str]) -> dict[str, Any]:
    """A connected account for a rater: it only receives transfers, Stripe collects its details, and
    the platform carries fees and losses (Express dashboard)."""
    params = {
        "country": settings.STRIPE_CONNECT_COUNTRY,
        "email": email,
        "capabilities": {"transfers": {"requested": True}},
        "controller": {
            "stripe_dashboard": {"type": "express"},
            "fees": {"payer": "application"},
            "losses": {"payments": "application"},
            "requirement_collection": "stripe",
        },
        "metadata": metadata,
    }
    with _translated():
        return _plain(_client().v1.accounts.create(params=params, options=_options(idempotency_key)))


def account_retrieve(*, account_id: str) -> dict[str, Any]:
    with _translated():
        return _plain(_client().v1.accounts.retrieve(account_id))


def account_link_create(*, account_id: str, refresh_url: str, return_url: str) -> dict[str, Any]:
    # No idempotency key of ours: links are single-use, so a retry should get a fresh one.
    params = {"account": account_id, "refresh_url": refresh_url, "return_url": return_url, "type": "account_onboarding"}
    with _translated():
        return _plain(_client().v1.account_links.create(params=params))


# --- transfers -------------------------------------------------------------------------------------


def transfer_create(
    *,
    amount: int,
    currency: str,
    destination: str,
    idempotency_key: str,
    transfer_group: str,
    metadata: dict[str, str],
    description: str = "",
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "amount": amount,
        "currency": currency,
        "destination": destination,
        "transfer_group": transfer_group,
        "metadata": metadata,
    }
    if description:
        params["description"] = description
    with _translated():
        return _plain(_client().v1.transfers.create(params=params, options=_options(idempotency_key)))


def transfers_find(*, transfer_group: str) -> list[dict[str, Any]]:
    """Transfers already made for one business action: how to check, before re-sending, whether an
    earlier attempt went through (idempotency keys expire after 24 h)."""
    params = {"transfer_group": transfer_group, "limit": _PAGE_SIZE}
    return list(_paginate(lambda: _client().v1.transfers.list(params=params)))


def transfers_list(*, created_gte: int | None = None) -> Iterator[dict[str, Any]]:
    params = {"limit": _PAGE_SIZE, **_created(created_gte)}
    return _paginate(lambda: _client().v1.transfers.list(params=params))


def transfer_reverse(*, transfer_id: str, idempotency_key: str, amount: int | None = None) -> dict[str, Any]:
    """Take money back from a connected account; amount=None reverses what remains. Returns the reversal."""
    params = {"amount": amount} if amount is not None else {}
    with _translated():
        reversal = _client().v1.transfers.reversals.create(
            transfer_id, params=params, options=_options(idempotency_key)
        )
        return _plain(reversal)


# --- funding: Checkout ------------------------------------------------------------------------------


def checkout_session_create(
    *,
    amount: int,
    currency: str,
    product_name: str,
    client_reference_id: str,
    metadata: dict[str, str],
    success_url: str,
    cancel_url: str,
    idempotency_key: str,
    customer_email: str | None = None,
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "mode": "payment",
        "line_items": [
            {
                "price_data": {"currency": currency, "unit_amount": amount, "product_data": {"name": product_name}},
                "quantity": 1,
            }
        ],
        "client_reference_id": client_reference_id,
        "metadata": metadata,
        # The PaymentIntent (and so its charge, refunds and disputes) carries the same metadata.
        "payment_intent_data": {"metadata": metadata},
        "success_url": success_url,
        "cancel_url": cancel_url,
    }
    if customer_email is not None:
        params["customer_email"] = customer_email
    with _translated():
        return _plain(_client().v1.checkout.sessions.create(params=params, options=_options(idempotency_key)))


def checkout_session_retrieve(*, session_id: str) -> dict[str, Any]:
    with _translated():
        return _plain(_client().v1.checkout.sessions.retrieve(session_id))


def payment_intent_retrieve(*, payment_intent_id: str) -> dict[str, Any]:
    """With the latest charge and its balance transaction expanded, so the Stripe fee can be read."""
    params = {"expand": ["latest_charge.balance_transaction"]}
    with _translated():
        return _plain(_client().v1.payment_intents.retrieve(payment_intent_id, params=params))


# --- balance and events ----------------------------------------------------------------------------


def balance_retrieve(*, account_id: str | None = None) -> dict[str, Any]:
    """The platform's balance, or a connected account's when account_id is given."""
    with _translated():
        return _plain(_client().v1.balance.retrieve(options=_options(account_id=account_id)))


def balance_transactions_list(*, created_gte: int | None = None) -> Iterator[dict[str, Any]]:
    params = {"limit": _PAGE_SIZE, **_created(created_gte)}
    return _paginate(lambda: _client().v1.balance_transactions.list(params=params))


def events_list(
    *, types: list[str] | None = None, created_gte: int | None = None, account_id: str | None = None
) -> Iterator[dict[str, Any]]:
    """The platform's events (Stripe keeps 30 days); a connected account's with account_id, since
    Connect events such as account.updated are listed on the account they happened on."""
    params: dict[str, Any] = {"limit": _PAGE_SIZE, **_created(created_gte)}
    if types:
        params["types"] = types
    options = _options(account_id=account_id)
    return _paginate(lambda: _client().v1.events.list(params=params, options=options))


# --- webhooks --------------------------------------------------------------------------------------


def event_construct(*, payload: bytes, sig_header: str, secret: str, tolerance: int | None = None) -> dict[str, Any]:
    """Verify a webhook's Stripe-Signature against the endpoint's secret and return the event.

    `payload` must be the raw request body (Django's request.body), never re-serialised JSON.
    """
    if not sig_header:
        raise SignatureError("No Stripe-Signature header.")
    if tolerance is None:
        tolerance = settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS
    try:
        event = stripe.Webhook.construct_event(payload, sig_header, secret, tolerance=tolerance)
    except stripe.SignatureVerificationError as exc:
        raise SignatureError(exc.user_message or "Invalid Stripe-Signature.") from exc
    except (ValueError, TypeError, AttributeError) as exc:  # not UTF-8, not JSON, or not an event
        raise SignatureError(f"The webhook body is not a Stripe event: {exc}") from exc
    return _plain(event)


def signature_header(*, payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """A Stripe-Signature header for `payload`, for tests that post webhooks to our views."""
    return stripe.WebhookSignature.generate_signature_header(payload.decode(), secret, timestamp=timestamp)
