"""The `stripe_sandbox` fixture: a fresh Stripe sandbox per test, with settings pointing at it.

Import it into a test module or conftest with
`from tests.payments.sandbox_fixtures import stripe_sandbox  # noqa: F401`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from payments.sandbox import SandboxServer

PLATFORM_WEBHOOK_SECRET = "whsec_test_platform"
CONNECT_WEBHOOK_SECRET = "whsec_test_connect"


@pytest.fixture
def stripe_sandbox(settings) -> Iterator[SandboxServer]:
    """A running sandbox (deliveries queued, not sent: read them with `take_deliveries()`).

    Two webhook endpoints are registered without URLs: one for platform events signed with
    STRIPE_WEBHOOK_SECRET, one for Connect events signed with STRIPE_CONNECT_WEBHOOK_SECRET.
    """
    server = SandboxServer(auto_deliver=False, auto_connected_payouts=True)
    base_url = server.start()
    settings.STRIPE_API_BASE = base_url
    settings.STRIPE_SECRET_KEY = "sk_test_sandbox"
    settings.STRIPE_WEBHOOK_SECRET = PLATFORM_WEBHOOK_SECRET
    settings.STRIPE_CONNECT_WEBHOOK_SECRET = CONNECT_WEBHOOK_SECRET
    settings.STRIPE_MAX_NETWORK_RETRIES = 0  # a test asserting one failure must see exactly one request
    settings.STRIPE_TIMEOUT_SECONDS = 2
    server.webhook_register(url=None, secret=PLATFORM_WEBHOOK_SECRET, connect=False)
    server.webhook_register(url=None, secret=CONNECT_WEBHOOK_SECRET, connect=True)
    try:
        yield server
    finally:
        server.stop()
