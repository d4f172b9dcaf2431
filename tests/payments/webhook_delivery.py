"""Posting the sandbox's signed webhook deliveries through the real webhook views.

The sandbox queues each event it emits as a `Delivery` (payload bytes and headers, signed with the
endpoint's secret); these helpers POST them with the Django test client to the endpoint Stripe
would call: the Connect endpoint for connected-account events, the platform endpoint otherwise.
"""

from __future__ import annotations

from typing import Any

import requests
from django.http import HttpResponse
from django.test import Client
from django.urls import reverse

from crowdplatform.accounts.models import Organization, User
from payments.funding import funding_checkout_create
from payments.models import Funding, FundingStatus
from payments.sandbox import Delivery, SandboxServer

# Set by the test client itself from `content_type` and the body.
_CLIENT_SET = frozenset({"content-type", "content-length", "host"})


def endpoint_url(*, connect: bool) -> str:
    return reverse("payments:stripe_connect_webhook" if connect else "payments:stripe_webhook")


def deliver(client: Client, delivery: Delivery) -> HttpResponse:
    headers = {name: value for name, value in delivery.headers.items() if name.lower() not in _CLIENT_SET}
    return client.post(
        endpoint_url(connect=delivery.connect),
        data=delivery.payload,
        content_type="application/json",
        headers=headers,
    )


def deliver_all(client: Client, sandbox: SandboxServer, *, expect: int | None = 200) -> list[HttpResponse]:
    """Deliver every queued delivery, oldest first; by default each must be answered 200."""
    responses = []
    for delivery in sandbox.take_deliveries():
        response = deliver(client, delivery)
        if expect is not None:
            assert response.status_code == expect, (delivery.event_type, response.status_code, response.content)
        responses.append(response)
    return responses


# --- Money flows through the sandbox ---------------------------------------------------------------


def funding_open(organization: Organization, actor: User, amount_cents: int = 10_000) -> Funding:
    return funding_checkout_create(organization=organization, actor=actor, amount_cents=amount_cents)


def funding_paid(
    client: Client, sandbox: SandboxServer, organization: Organization, actor: User, amount_cents: int = 10_000
) -> Funding:
    """A top-up paid by card at the sandbox's checkout and credited from its delivered webhook."""
    funding = funding_open(organization, actor, amount_cents)
    sandbox.checkout_pay(session_id=funding.checkout_session_id, outcome="paid")
    deliver_all(client, sandbox)
    funding.refresh_from_db()
    assert funding.status == FundingStatus.PAID
    return funding


def refund_create(sandbox: SandboxServer, *, charge_id: str, amount: int | None = None) -> dict[str, Any]:
    """A refund made at Stripe (from its dashboard, say): the platform learns of it from the webhook."""
    data = {"charge": charge_id, **({"amount": str(amount)} if amount is not None else {})}
    response = requests.post(
        f"{sandbox.base_url}/v1/refunds",
        data=data,
        headers={"Authorization": "Bearer sk_test_sandbox"},
        timeout=5,
    )
    assert response.status_code == 200, response.text
    return response.json()


def stripe_platform_balance(sandbox: SandboxServer, currency: str = "usd") -> int:
    """What Stripe says the platform's balance is: the ledger's Stripe balance must agree."""
    return sandbox.state()["platform_balance"].get(currency, 0)
