"""Ledger postings per second: how fast `payments.ledger.ledger_post` writes, alone and at once.

Runs on a throwaway database that Django's test runner machinery creates next to DATABASE_URL's
(PostgreSQL when DATABASE_URL points there; SQLite in a temporary file otherwise) and drops at
the end. Four measurements, each followed by exact checks (balances, `ledger_check`):

1. one posting per transaction, the shape of a vote's pay (client funds -> rater pending + fee);
2. the same postings in calls of 1,000 (how payout batches and releases post);
3. THREADS connections posting at once onto ONE organization's funds account (the hot row every
   vote of a client touches);
4. THREADS connections posting at once, each onto its own organization.

    .venv/bin/python benchmarks/ledger_postings.py [--postings 5000] [--threads 8]

Prints a JSON summary and writes it to benchmarks/results/ledger_postings-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import threading
import time
from datetime import UTC, datetime
from typing import Any

from benchlib import django_setup_in_process, summary_report  # benchmarks/benchlib.py (on sys.path for scripts)

django_setup = django_setup_in_process


def vote_pay(reference: str, *, organization_id: int, rater_id: int) -> Any:
    from payments import ledger

    return ledger.Posting(
        reference=reference,
        kind="task_pay",
        lines=(
            ledger.Line(ledger.org_funds(organization_id, "usd"), 30),
            ledger.Line(ledger.rater_pending(rater_id, "usd"), -25),
            ledger.Line(ledger.platform_revenue(organization_id, "usd"), -5),
        ),
        organization_id=organization_id,
        rater_id=rater_id,
    )


def post_one_by_one(prefix: str, count: int, *, organization_id: int, raters: list[int]) -> float:
    from django.db import transaction

    from payments.ledger import ledger_post

    started = time.perf_counter()
    for n in range(count):
        with transaction.atomic():
            ledger_post(
                postings=[vote_pay(f"{prefix}:{n}", organization_id=organization_id, rater_id=raters[n % len(raters)])]
            )
    return time.perf_counter() - started


def post_in_batches(prefix: str, count: int, *, organization_id: int, raters: list[int], size: int = 1000) -> float:
    from django.db import transaction

    from payments.ledger import ledger_post

    started = time.perf_counter()
    for start in range(0, count, size):
        with transaction.atomic():
            ledger_post(
                postings=[
                    vote_pay(f"{prefix}:{n}", organization_id=organization_id, rater_id=raters[n % len(raters)])
                    for n in range(start, min(start + size, count))
                ]
            )
    return time.perf_counter() - started


def post_concurrently(prefix: str, per_thread: int, organizations: list[int], raters: list[int]) -> float:
    from django.db import connection

    errors: list[BaseException] = []
    barrier = threading.Barrier(len(organizations))

    def work(index: int, organization_id: int) -> None:
        try:
            barrier.wait()
            post_one_by_one(f"{prefix}:{index}", per_thread, organization_id=organization_id, raters=raters)
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(i, org)) for i, org in enumerate(organizations)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - started


def require(condition: bool, message: str) -> None:
    if not condition:
        raise SystemExit(f"CHECK FAILED: {message}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postings", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args(argv)
    django_setup()

    from django.db import connection

    from crowdplatform.accounts.models import Organization
    from payments import ledger
    from tests.factories import UserFactory

    if connection.vendor != "postgresql":
        raise SystemExit(
            "Run it against PostgreSQL (DATABASE_URL=postgres://...): SQLite takes no row locks and serializes "
            "every writer, so the concurrent measurements mean nothing there."
        )
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        organizations = [Organization.objects.create(name=f"Bench {n}", slug=f"bench-{n}").pk for n in range(9)]
        raters = [UserFactory().pk for _ in range(100)]
        n, threads = args.postings, args.threads
        per_thread = n // threads
        figures: dict[str, Any] = {}

        seconds = post_one_by_one("single", n, organization_id=organizations[0], raters=raters)
        figures["one_per_transaction"] = {"postings": n, "seconds": round(seconds, 3), "per_s": round(n / seconds)}
        seconds = post_in_batches("batch", n, organization_id=organizations[0], raters=raters)
        figures["batches_of_1000"] = {"postings": n, "seconds": round(seconds, 3), "per_s": round(n / seconds)}
        hot = [organizations[1]] * threads
        seconds = post_concurrently("hot", per_thread, hot, raters)
        figures["concurrent_one_account"] = {
            "threads": threads,
            "postings": per_thread * threads,
            "seconds": round(seconds, 3),
            "per_s": round(per_thread * threads / seconds),
        }
        spread = organizations[1 : 1 + threads] if threads <= 8 else organizations[1:]
        seconds = post_concurrently("spread", per_thread, spread, raters)
        figures["concurrent_own_accounts"] = {
            "threads": len(spread),
            "postings": per_thread * len(spread),
            "seconds": round(seconds, 3),
            "per_s": round(per_thread * len(spread) / seconds),
        }

        check = ledger.ledger_check()
        require(check.ok, f"the ledger does not check out: {check}")
        total = 2 * n + 2 * per_thread * threads
        require(check.transactions == total, f"{check.transactions} transactions, expected {total}")
        require(ledger.balance(ledger.org_funds(organizations[0], "usd")) == -30 * 2 * n, "sequential balance")
        require(
            ledger.balance(ledger.org_funds(organizations[1], "usd")) == -30 * per_thread * (threads + 1),
            "the hot account's balance lost a concurrent posting",
        )
        summary = {
            "benchmark": "ledger_postings",
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "database": connection.vendor,
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
            "figures": figures,
            "checks": {"ledger_check_ok": True, "transactions": check.transactions, "entries": check.entries},
        }
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
    summary_report("ledger_postings", summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
