"""Test helpers for money: fund an organization straight through the ledger.

Real funding comes through Stripe Checkout and a verified webhook (tests/payments/test_funding.py);
most tests only need an organization that can pay for its tasks.
"""

from __future__ import annotations

import uuid

from django.db import transaction

from payments import ledger


def fund(organization_id: int, amount_cents: int, *, currency: str = "usd") -> None:
    with transaction.atomic():
        ledger.ledger_post(
            postings=[
                ledger.move(
                    reference=f"test-funding:{uuid.uuid4().hex}",
                    kind="funding",
                    amount_cents=amount_cents,
                    debit=ledger.stripe_balance(currency),
                    credit=ledger.org_funds(organization_id, currency),
                    organization_id=organization_id,
                    memo="Test funding",
                )
            ]
        )
