"""`manage.py ledger_check` says OK on a sound ledger and fails loudly otherwise."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from payments.models import LedgerAccount
from tests.money import fund

pytestmark = pytest.mark.django_db


def test_a_sound_ledger_is_ok(organization):
    fund(organization.pk, 1_000)
    out = io.StringIO()
    call_command("ledger_check", stdout=out)
    assert out.getvalue() == "Ledger OK: 1 transactions, 2 entries, all balanced.\n"


def test_a_tampered_cached_balance_fails(organization):
    fund(organization.pk, 1_000)
    LedgerAccount.objects.filter(kind="org_funds").update(balance_cents=5)
    err = io.StringIO()
    with pytest.raises(CommandError, match="does not check out"):
        call_command("ledger_check", stderr=err)
    assert err.getvalue() == f"balance: org_funds:{organization.pk}:usd caches 5, its entries sum to -1000\n"
