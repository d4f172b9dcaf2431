"""Payout batch benchmark: one batch for N raters against the Stripe sandbox, timed and query-counted.

    .venv/bin/python benchmarks/payout_batch.py [--raters 10000] [--keep-db] [--no-record]

The issue's figure: a payout batch for 10,000 raters against the sandbox, total time and database
queries per rater (no N+1).

What it does, in order:

1. The database. With DATABASE_URL pointing at PostgreSQL it builds a throwaway database next to it,
   `<name>_payout_bench` on the same server (dropped and recreated, dropped again at the end unless
   --keep-db), as benchmarks/task_cycle.py does; otherwise a throwaway SQLite file in a temporary
   folder. Either way the schema comes from the real migrations, and Django runs with production
   settings (DEBUG off, so nothing records queries except the counters below).
2. The sandbox: started in-process on a free port (no webhook endpoints, nothing delivered, connected
   accounts keep their funds), the platform's STRIPE_API_BASE pointed at it. The SDK talks to it over
   HTTP exactly as in production (default timeout and network retries).
3. The raters: N users with rater profiles (bulk), each with a connected account created and onboarded
   through the sandbox's Python API (the same engine the HTTP API runs, minus 2N HTTP round trips) and
   recorded as a ConnectedAccount with transfers active; one organization funded by a top-up; each
   rater's available balance (between 10.00 and 99.99 USD, deterministic) posted with `ledger_post` in
   one call; the sandbox's platform balance funded with the same total, so Stripe's balance equals the
   ledger's.
4. Measured: `payout_batch_preview` (one query), `payout_batch_create` (the batch's own send-on-commit is
   captured, not run, so creation is timed alone) and `payout_batch_send` (every transfer, one after
   another, through the SDK; or, with --senders N, N threads each sending a share with `payout_send`,
   as N Celery workers would). Each phase counts its database statements with an execute wrapper on the
   connection (every statement, none dropped, unlike Django's 9,000-entry debug log; by kind, per rater)
   and the time spent waiting for them, and lists the statements of the creation; the time spent inside
   Stripe calls is measured separately.
5. Checks: N payouts all sent, exactly N transfers at the sandbox with one per connected account and
   each of the rater's amount, every rater's available balance 0, nothing left in transit, the
   ledger's Stripe balance equal to the sandbox's, and `ledger_check()` ok. A failed check exits 1.
6. Prints a JSON summary and writes it to benchmarks/results/payout_batch-<UTC timestamp>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchlib import Database  # benchmarks/benchlib.py (scripts run with benchmarks/ on sys.path)

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "benchmarks" / "results"
SECRET_KEY = "benchmark-only-secret-key-" + "p" * 40
BENCH_SUFFIX = "_payout_bench"
CURRENCY = "usd"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def amount_for(index: int) -> int:
    """Each rater's available balance: 10.00 to 99.99, spread deterministically."""
    return 1000 + (index * 7919) % 9000


# --- Database ---------------------------------------------------------------------------------------------


def _database(url: str | None) -> Database:
    return Database(url, suffix=BENCH_SUFFIX, prefix="payout-bench-")


def django_setup(database: Database, stripe_api_base: str) -> None:
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "crowdplatform.settings",
            "DATABASE_URL": database.url,
            "DATABASE_CONN_MAX_AGE": "600",
            "DEBUG": "0",
            "SECRET_KEY": SECRET_KEY,
            "CELERY_BROKER_URL": "",
            "LOG_LEVEL": "WARNING",
            "STRIPE_SECRET_KEY": "",  # no real keys: the sandbox
            "STRIPE_API_BASE": stripe_api_base,
        }
    )
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    import django

    django.setup()


# --- Counting statements ------------------------------------------------------------------------------------


class StatementCounter:
    """Counts every statement executed where it is installed (an execute wrapper: no 9,000-entry cap, and
    usable from several threads), the time spent waiting for them, and what kinds they were."""

    def __init__(self, *, keep: bool = False) -> None:
        self.count = 0
        self.seconds = 0.0  # waiting for the database (round trip and its work), summed over threads
        self.keep = keep
        self.statements: list[str] = []
        self.by_kind: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            spent = time.perf_counter() - started
            words = " ".join(sql.split())
            with self._lock:
                self.count += 1
                self.seconds += spent
                self.by_kind[_statement_kind(words)] += 1
                if self.keep:
                    self.statements.append(words[:100])

    def per_rater(self, raters: int) -> dict[str, float]:
        return {kind: round(count / raters, 2) for kind, count in self.by_kind.most_common()}


def _statement_kind(sql: str) -> str:
    """`UPDATE payments_payout`, `SELECT payments_ledgeraccount FOR UPDATE`, `SAVEPOINT`, ..."""
    words = sql.replace('"', "").split()
    if not words:
        return "?"
    verb = words[0].upper()
    upper = [word.upper() for word in words]
    marker = {"SELECT": "FROM", "DELETE": "FROM", "INSERT": "INTO", "UPDATE": "UPDATE"}.get(verb)
    table = ""
    if marker in upper and upper.index(marker) + 1 < len(words):
        table = words[upper.index(marker) + 1].split(".")[0]
    suffix = " FOR UPDATE" if " FOR UPDATE" in sql.upper() else ""
    return f"{verb} {table}{suffix}".strip()


@contextmanager
def measured(
    counter: StatementCounter | None = None, *, keep: bool = False
) -> Iterator[tuple[StatementCounter, dict[str, float]]]:
    """Count this thread's statements and time the block."""
    from django.db import connection

    counter = counter or StatementCounter(keep=keep)
    timing: dict[str, float] = {}
    started = time.perf_counter()
    with connection.execute_wrapper(counter):
        yield counter, timing
    timing["seconds"] = time.perf_counter() - started


def send_in_parallel(batch_id: int, senders: int, counter: StatementCounter) -> int:
    """What several Celery workers sending one batch would do: each thread (its own connection) sends a
    share of the payouts with `payout_send`; the claims keep any two from sending the same one."""
    from django.db import connection

    from payments.models import Payout, PayoutStatus
    from payments.payouts import payout_send

    ids = list(
        Payout.objects.filter(batch_id=batch_id, status=PayoutStatus.PENDING)
        .order_by("id")
        .values_list("id", flat=True)
    )
    sent = [0] * senders
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            with connection.execute_wrapper(counter):
                for payout_id in ids[index::senders]:
                    sent[index] += payout_send(payout_id=payout_id).status == PayoutStatus.SENT
        except BaseException as error:  # reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(index,)) for index in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return sum(sent)


@contextmanager
def stripe_call_timer() -> Iterator[dict[str, float]]:
    """Time spent inside stripe_api.transfer_create / transfers_find (HTTP to the sandbox and the SDK)."""
    from payments import stripe_api

    spent = {"seconds": 0.0, "calls": 0}
    lock = threading.Lock()
    originals = {name: getattr(stripe_api, name) for name in ("transfer_create", "transfers_find")}

    def timed(function: Callable[..., Any]) -> Callable[..., Any]:
        def call(**kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(**kwargs)
            finally:
                with lock:
                    spent["seconds"] += time.perf_counter() - started
                    spent["calls"] += 1

        return call

    for name, function in originals.items():
        setattr(stripe_api, name, timed(function))
    try:
        yield spent
    finally:
        for name, function in originals.items():
            setattr(stripe_api, name, function)


# --- Building the raters ------------------------------------------------------------------------------------


def build(sandbox: Any, raters: int) -> dict[str, Any]:
    from django.contrib.auth.hashers import make_password
    from django.db import connection, transaction
    from django.utils import timezone

    from crowdplatform.accounts.models import AccountType, Organization, User
    from crowdplatform.raters.models import RaterProfile
    from payments import ledger
    from payments.models import ConnectedAccount
    from payments.sandbox.engine import RequestContext

    started = time.perf_counter()
    unusable = make_password(None)
    with transaction.atomic():
        users = User.objects.bulk_create(
            [
                User(email=f"bench-rater-{n}@example.org", account_type=AccountType.RATER, password=unusable)
                for n in range(raters)
            ],
            batch_size=2000,
        )
        RaterProfile.objects.bulk_create([RaterProfile(user=user) for user in users], batch_size=2000)
    log(f"{raters} raters created")

    account_ids = []
    with sandbox.engine.lock:
        for user in users:
            account = sandbox.engine.account_create(
                RequestContext(),
                {
                    "country": "US",
                    "email": user.email,
                    "capabilities": {"transfers": {"requested": "true"}},
                    "metadata": {"rater_id": str(user.pk)},
                },
            )
            sandbox.engine.account_onboard(account_id=account["id"], complete=True)
            account_ids.append(account["id"])
    now = timezone.now()
    ConnectedAccount.objects.bulk_create(
        [
            ConnectedAccount(
                rater=user,
                stripe_account_id=account_id,
                details_submitted=True,
                payouts_enabled=True,
                transfers_capability="active",
                status_as_of=now,
            )
            for user, account_id in zip(users, account_ids, strict=True)
        ],
        batch_size=2000,
    )
    log(f"{raters} connected accounts onboarded in the sandbox and recorded")

    organization = Organization.objects.create(name="Benchmark Lab", slug="benchmark-lab")
    amounts = {user.pk: amount_for(n) for n, user in enumerate(users)}
    total = sum(amounts.values())
    with transaction.atomic():
        ledger.ledger_post(
            postings=[
                ledger.move(
                    reference="bench-topup",
                    kind="funding",
                    amount_cents=total,
                    debit=ledger.stripe_balance(CURRENCY),
                    credit=ledger.org_funds(organization.pk, CURRENCY),
                    organization_id=organization.pk,
                ),
                *(
                    ledger.move(
                        reference=f"bench-earning:{rater_id}",
                        kind="earning_release",
                        amount_cents=cents,
                        debit=ledger.org_funds(organization.pk, CURRENCY),
                        credit=ledger.rater_available(rater_id, CURRENCY),
                        organization_id=organization.pk,
                        rater_id=rater_id,
                    )
                    for rater_id, cents in amounts.items()
                ),
            ]
        )
    sandbox.balance_add(amount=total, currency=CURRENCY)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    log(f"available balances posted ({total / 100:,.2f} USD) and the sandbox funded")
    return {
        "amounts": amounts,
        "accounts": dict(zip((user.pk for user in users), account_ids, strict=True)),
        "total_cents": total,
        "seconds": round(time.perf_counter() - started, 2),
    }


# --- Checks -------------------------------------------------------------------------------------------------


def verify(sandbox: Any, built: dict[str, Any], batch_id: int) -> list[dict[str, Any]]:
    from payments import ledger
    from payments.models import LedgerAccount, Payout, PayoutStatus

    checks: list[dict[str, Any]] = []

    def check(name: str, bad: int, detail: str = "") -> None:
        checks.append({"check": name, "ok": bad == 0, "bad": bad, "detail": detail})

    raters = len(built["amounts"])
    payouts = {p.rater_id: p for p in Payout.objects.filter(batch_id=batch_id)}
    check("a payout per rater", abs(len(payouts) - raters), f"{len(payouts)} payouts for {raters} raters")
    statuses = Counter(p.status for p in payouts.values())
    check("every payout sent", raters - statuses.get(PayoutStatus.SENT, 0), repr(dict(statuses)))
    with sandbox.engine.lock:
        transfers = [obj for obj in sandbox.engine.objects.values() if obj["object"] == "transfer"]
    check("exactly N transfers at the sandbox", abs(len(transfers) - raters), f"{len(transfers)} transfers")
    per_destination = Counter(transfer["destination"] for transfer in transfers)
    check("one transfer per connected account", sum(1 for n in per_destination.values() if n != 1))
    by_destination = {transfer["destination"]: transfer for transfer in transfers}
    wrong = 0
    for rater_id, cents in built["amounts"].items():
        transfer = by_destination.get(built["accounts"][rater_id])
        payout = payouts.get(rater_id)
        if (
            transfer is None
            or payout is None
            or transfer["amount"] != cents
            or payout.amount_cents != cents
            or payout.stripe_transfer_id != transfer["id"]
        ):
            wrong += 1
    check("each transfer is the rater's whole available balance", wrong)
    owed = LedgerAccount.objects.filter(kind="rater_available").exclude(balance_cents=0).count()
    check("every rater's available balance is 0", owed)
    check("nothing left in transit", abs(ledger.balance(ledger.payouts_in_transit(CURRENCY))))
    ours = ledger.balance(ledger.stripe_balance(CURRENCY))
    theirs = sandbox.state()["platform_balance"].get(CURRENCY, 0)
    check("ledger's Stripe balance equals the sandbox's", abs(ours - theirs), f"ledger {ours}, sandbox {theirs}")
    result = ledger.ledger_check()
    check(
        "ledger_check ok",
        len(result.unbalanced) + len(result.balance_mismatches),
        f"{result.transactions} transactions, {result.entries} entries",
    )
    return checks


# --- Main ---------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--raters", type=int, default=10_000, help="raters in the batch (default 10000)")
    parser.add_argument(
        "--senders",
        type=int,
        default=1,
        help="send with this many threads, as that many workers would (PostgreSQL only; default 1: the "
        "batch task's own sequential send)",
    )
    parser.add_argument("--keep-db", action="store_true", help="keep the throwaway database afterwards")
    parser.add_argument("--no-record", action="store_true", help="do not write benchmarks/results/*.json")
    args = parser.parse_args(argv)
    if args.raters < 1 or args.senders < 1:
        parser.error("--raters and --senders must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    database = _database(os.environ.get("DATABASE_URL"))
    if args.senders > 1 and not database.postgres:
        print("--senders above 1 needs PostgreSQL (DATABASE_URL): SQLite serializes writers.", file=sys.stderr)
        return 2
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from payments.sandbox import SandboxServer

    sandbox = SandboxServer(auto_deliver=False, auto_connected_payouts=False)
    base_url = sandbox.start()
    try:
        database.create()
    except Exception as error:
        print(f"Could not create the benchmark database {database.name}: {error}", file=sys.stderr)
        sandbox.stop()
        return 2
    try:
        return run(args, database, sandbox, base_url)
    finally:
        sandbox.stop()
        if not args.keep_db:
            database.drop()


def run(args: argparse.Namespace, database: Database, sandbox: Any, base_url: str) -> int:
    django_setup(database, base_url)
    import django
    from django.conf import settings
    from django.core.management import call_command

    log(f"migrating the {database.vendor} database {database.name}")
    call_command("migrate", verbosity=0, interactive=False)
    built = build(sandbox, args.raters)

    from payments import payouts
    from payments.models import PayoutBatchTrigger

    # The batch's send-on-commit task is captured so that creating is timed alone.
    enqueued: list[int] = []
    payouts._enqueue_batch_send = enqueued.append  # type: ignore[assignment]

    with measured() as (preview_queries, preview_time):
        preview = payouts.payout_batch_preview()
    log(f"preview: {preview.payouts_count} to pay ({preview_time['seconds']:.2f} s)")

    with measured(keep=True) as (create_queries, create_time):
        batch = payouts.payout_batch_create(trigger=PayoutBatchTrigger.STAFF, actor=None)
    log(f"created batch {batch.pk}: {batch.payouts_count} payouts in {create_time['seconds']:.2f} s")

    send_queries = StatementCounter()
    with stripe_call_timer() as stripe_time, measured(send_queries) as (_, send_time):
        if args.senders == 1:
            sent = payouts.payout_batch_send(batch_id=batch.pk)
        else:
            sent = send_in_parallel(batch.pk, args.senders, send_queries)
    log(f"sent {sent} payouts in {send_time['seconds']:.2f} s")

    checks = verify(sandbox, built, batch.pk)
    raters = args.raters
    total_seconds = create_time["seconds"] + send_time["seconds"]
    summary = {
        "benchmark": "payout_batch",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([".venv/bin/python benchmarks/payout_batch.py", *(sys.argv[1:] if argv_is_cli() else [])]),
        "raters": raters,
        "database": database.server_version(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "django": django.get_version(),
            "platform": platform.platform(),
        },
        "sandbox": {"in_process": True, "base_url": base_url, "network_retries": settings.STRIPE_MAX_NETWORK_RETRIES},
        "setup_seconds": built["seconds"],
        "total_cents": built["total_cents"],
        "preview": {
            "seconds": round(preview_time["seconds"], 3),
            "queries": preview_queries.count,
            "to_pay": preview.payouts_count,
        },
        "create": {
            "seconds": round(create_time["seconds"], 3),
            "seconds_waiting_for_the_database": round(create_queries.seconds, 3),
            "queries": create_queries.count,
            "queries_per_rater": round(create_queries.count / raters, 4),
            "statements": create_queries.statements,
            "payouts": batch.payouts_count,
            "enqueued_send_tasks": len(enqueued),
        },
        "send": {
            "senders": args.senders,
            "seconds": round(send_time["seconds"], 3),
            "payouts_per_second": round(sent / send_time["seconds"], 1) if send_time["seconds"] else None,
            "queries": send_queries.count,
            "queries_per_rater": round(send_queries.count / raters, 2),
            "statements_per_rater": send_queries.per_rater(raters),
            "seconds_waiting_for_the_database": round(send_queries.seconds, 3),
            "stripe_calls": stripe_time["calls"],
            "seconds_in_stripe_calls": round(stripe_time["seconds"], 3),  # summed over senders
            "sent": sent,
        },
        "total": {
            "seconds": round(total_seconds, 3),
            "payouts_per_second": round(raters / total_seconds, 1) if total_seconds else None,
            "queries_per_rater": round((create_queries.count + send_queries.count) / raters, 2),
        },
        "checks": checks,
        "ok": all(check["ok"] for check in checks),
    }
    text = json.dumps(summary, indent=2)
    print(text)
    if not args.no_record:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        path = RESULTS_DIR / f"payout_batch-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
        path.write_text(text + "\n")
        log(f"written to {path.relative_to(REPO)}")
    for check in checks:
        if not check["ok"]:
            log(f"CHECK FAILED: {check['check']} ({check['bad']} bad) {check['detail']}")
    return 0 if summary["ok"] else 1


def argv_is_cli() -> bool:
    return Path(sys.argv[0]).name == Path(__file__).name


if __name__ == "__main__":
    sys.exit(main())
