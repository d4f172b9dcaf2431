"""`manage.py ledger_check`: prove the ledger — every transaction balances, every cached balance
equals its entries. Exits 1 (and lists what is wrong) otherwise; run it from monitoring."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from payments.ledger import ledger_check


class Command(BaseCommand):
    help = "Check that every ledger transaction balances and every cached balance equals its entries."

    def handle(self, *args: Any, **options: Any) -> None:
        check = ledger_check()
        for reference, currency, total in check.unbalanced:
            self.stderr.write(f"unbalanced: {reference} sums to {total} {currency}")
        for key, cached, derived in check.balance_mismatches:
            self.stderr.write(f"balance: {key} caches {cached}, its entries sum to {derived}")
        if not check.ok:
            raise CommandError("The ledger does not check out.")
        self.stdout.write(f"Ledger OK: {check.transactions} transactions, {check.entries} entries, all balanced.")
