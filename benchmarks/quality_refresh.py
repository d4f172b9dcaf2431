"""Quality refresh benchmark: a full refresh over N votes, then an incremental one after 1,000 more.

    .venv/bin/python benchmarks/quality_refresh.py [--votes 1000000] [--new-votes 1000] [--keep-db] [--no-record]

The issue's figures: a full refresh over 1,000,000 votes under 60 s on the 2-core machine; an
incremental refresh after 1,000 new votes under 2 s.

What it does, in order:

1. The database: with DATABASE_URL pointing at PostgreSQL, a throwaway `<name>_quality_bench` next
   to it (dropped and recreated, dropped again at the end unless --keep-db), as
   benchmarks/payout_batch.py does; otherwise a throwaway SQLite file. Schema from the migrations,
   production settings (DEBUG off).
2. The data, shaped like a real platform: 4 studies of 8 systems (28 system pairs each), overlap 3,
   2 criteria; 2,000 raters of mixed behaviour (accurate, careless, expert, random clicker,
   always-A, too fast); 5% of the votes on gold items; sides random per task; times per vote
   log-normal around 40 s (1-3 s for the too-fast raters); votes spread over 30 days. Generated
   with numpy and inserted with COPY (PostgreSQL) or executemany (SQLite), not through vote_submit:
   the domain functions would take hours for a million votes, and the refresh reads only the rows.
   The N + new votes are generated together; the newest `--new-votes` (across all studies, as live
   studies receive them) are held back for step 4.
3. Measured: `signals_refresh(full=True)` over the N votes.
4. The held-back votes are inserted; measured: `signals_refresh()` (incremental).
5. Each measurement reports the refresh's own phases (queries, numpy, crowd-kit Dawid-Skene, Noisy
   Bradley-Terry, writing), the statements it ran and the rows written. Checks: one RaterSignal per
   rater and study plus one overall per rater; the StudySignal vote counts equal the votes. Prints a
   JSON summary and writes it to benchmarks/results/quality_refresh-<UTC timestamp>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from benchlib import Database, summary_report  # benchmarks/benchlib.py (scripts run with benchmarks/ on sys.path)

REPO = Path(__file__).resolve().parent.parent
SECRET_KEY = "benchmark-only-secret-key-" + "q" * 40
BENCH_SUFFIX = "_quality_bench"
STUDIES = 4
SYSTEMS = 8
OVERLAP = 3
RATERS = 2000
GOLD_SHARE = 0.05
GOLD_ITEMS = 200
CRITERIA = ("helpfulness", "accuracy")
# Behaviour: (share of raters, probability of picking the stronger system, tie/both-bad rate)
BEHAVIOURS = {
    "accurate": (0.70, 0.85, 0.06),
    "careless": (0.10, 0.65, 0.06),
    "expert": (0.02, 0.97, 0.02),
    "random": (0.08, 0.50, 0.50),
    "always_a": (0.05, None, 0.0),
    "too_fast": (0.05, 0.50, 0.0),
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- Database ---------------------------------------------------------------------------------------------


def _database(url: str | None) -> Database:
    return Database(url, suffix=BENCH_SUFFIX, prefix="quality-bench-")


def django_setup(database: Database) -> None:
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "crowdplatform.settings",
            "DATABASE_URL": database.url,
            "DATABASE_CONN_MAX_AGE": "600",
            "DEBUG": "0",
            "SECRET_KEY": SECRET_KEY,
            "CELERY_BROKER_URL": "",
            "LOG_LEVEL": "WARNING",
        }
    )
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    import django

    django.setup()


# --- Counting statements ------------------------------------------------------------------------------------


class StatementCounter:
    """Counts every statement run where it is installed, and the time spent waiting for them."""

    def __init__(self) -> None:
        self.count = 0
        self.seconds = 0.0

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.count += 1
            self.seconds += time.perf_counter() - started


@contextmanager
def measured() -> Iterator[tuple[StatementCounter, dict[str, float]]]:
    from django.db import connection

    counter = StatementCounter()
    timing: dict[str, float] = {}
    started = time.perf_counter()
    with connection.execute_wrapper(counter):
        yield counter, timing
    timing["seconds"] = time.perf_counter() - started


# --- Fast inserts -------------------------------------------------------------------------------------------


def insert_rows(table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
    """COPY on PostgreSQL, executemany on SQLite: a million rows in seconds, not the ORM's minutes."""
    from django.db import connection

    if not rows:
        return
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join("?" * len(columns))
            cursor.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)  # noqa: S608 (our own table names)


def sequences_reset(tables: Sequence[str]) -> None:
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT COALESCE(MAX(id), 1) FROM {table}))"  # noqa: S608
            )


# --- Building the data --------------------------------------------------------------------------------------


def build(total_votes: int, new_votes: int, seed: int) -> dict[str, Any]:
    """Raters, studies, items and votes; returns the held-back newest votes and tasks."""
    from django.db import transaction
    from django.utils import timezone

    from crowdplatform.accounts.models import AccountType, Organization, User
    from crowdplatform.raters.models import ApplicationStatus, RaterProfile
    from evaluations.models import PairStat, Study, StudyStatus, System

    rng = np.random.default_rng(seed)
    now = timezone.now()
    with transaction.atomic():
        users = User.objects.bulk_create(
            [
                User(email=f"rater{i}@bench.example", password="!", account_type=AccountType.RATER)  # noqa: S106
                for i in range(RATERS)
            ],
            batch_size=1000,
        )
        raters = RaterProfile.objects.bulk_create(
            [
                RaterProfile(user=user, status=ApplicationStatus.APPROVED, display_name=user.email, created_at=now)
                for user in users
            ],
            batch_size=1000,
        )
        organization = Organization.objects.create(name="Bench lab", slug="bench-lab", created_at=now)
    rater_ids = np.array([rater.pk for rater in raters])
    behaviour = rng.choice(list(BEHAVIOURS), size=RATERS, p=[share for share, _, _ in BEHAVIOURS.values()])
    per_study = (total_votes + new_votes) // STUDIES
    votes: list[np.ndarray] = []
    for index in range(STUDIES):
        with transaction.atomic():
            study = Study.objects.create(
                organization=organization,
                name=f"Bench study {index}",
                question="Which response is better?",
                criteria=[{"name": name, "definition": name} for name in CRITERIA],
                pay_per_task_cents=25,
                votes_per_pair=OVERLAP,
                gold_rate=GOLD_SHARE,
                status=StudyStatus.LIVE,
                created_at=now,
                launched_at=now,
            )
            systems = System.objects.bulk_create(
                [System(study=study, name=f"sys-{s}", provider="Lab", registered_at=now) for s in range(SYSTEMS)]
            )
            system_ids = np.array([system.pk for system in systems])
            stats = PairStat.objects.bulk_create(
                [
                    PairStat(study=study, system_low=systems[low], system_high=systems[high])
                    for low in range(SYSTEMS)
                    for high in range(low + 1, SYSTEMS)
                ]
            )
            votes.append(study_votes(study, system_ids, stats, rater_ids, behaviour, per_study, rng, now))
        log(f"study {index + 1}/{STUDIES}: {per_study:,} votes generated")
    return votes_insert(np.concatenate(votes).view(np.recarray), new_votes=new_votes)


def study_votes(
    study: Any,
    system_ids: np.ndarray,
    stats: list[Any],
    rater_ids: np.ndarray,
    behaviour: np.ndarray,
    count: int,
    rng: np.random.Generator,
    now: datetime,
) -> np.ndarray:
    """One study's items, responses and item pairs (inserted), and its votes (returned as a record array)."""
    from evaluations.models import Item, Response

    combos = [(low, high) for low in range(SYSTEMS) for high in range(low + 1, SYSTEMS)]
    gold_votes = int(count * GOLD_SHARE)
    pairs = (count - gold_votes) // OVERLAP
    items = -(-pairs // len(combos))
    strength = rng.normal(0, 1, SYSTEMS)
    item_rows = [
        Item(study=study, prompt_id=f"p{i}", prompt=[], created_at=now, gold_answer="") for i in range(items)
    ] + [
        Item(study=study, prompt_id=f"g{i}", prompt=[], created_at=now, is_gold=True, gold_answer="good")
        for i in range(GOLD_ITEMS)
    ]
    made = Item.objects.bulk_create(item_rows, batch_size=2000)
    item_ids = np.array([item.pk for item in made])
    responses = Response.objects.bulk_create(
        [
            Response(item_id=int(item_ids[i]), system_id=int(system_ids[s]), label=f"sys-{s}", content=[])
            for i in range(items)
            for s in range(SYSTEMS)
        ]
        + [
            Response(item_id=int(item_ids[items + g]), label=label, content=[])
            for g in range(GOLD_ITEMS)
            for label in ("good", "bad")
        ],
        batch_size=5000,
    )
    response_ids = np.array([response.pk for response in responses])
    # Normal item pairs: item i, systems (low, high) of combo c.
    pair_item = np.arange(pairs) // len(combos)
    pair_combo = np.arange(pairs) % len(combos)
    low = np.array([c[0] for c in combos])[pair_combo]
    high = np.array([c[1] for c in combos])[pair_combo]
    pair_rows = pairs + GOLD_ITEMS
    pair_ids = next_ids("evaluations_itempair", pair_rows)
    good = response_ids[items * SYSTEMS + 2 * np.arange(GOLD_ITEMS)]
    bad = good + 1
    pair_low_response = np.r_[response_ids[pair_item * SYSTEMS + low], good]
    pair_high_response = np.r_[response_ids[pair_item * SYSTEMS + high], bad]
    insert_rows(
        "evaluations_itempair",
        ["id", "study_id", "item_id", "response_low_id", "response_high_id", "pair_stat_id", "is_gold", "votes"],
        list(
            zip(
                pair_ids.tolist(),
                [study.pk] * pair_rows,
                np.r_[item_ids[pair_item], item_ids[items:]].tolist(),
                pair_low_response.tolist(),
                pair_high_response.tolist(),
                [stats[c].pk for c in pair_combo.tolist()] + [None] * GOLD_ITEMS,
                [False] * pairs + [True] * GOLD_ITEMS,
                [OVERLAP] * pairs + [0] * GOLD_ITEMS,
                strict=True,
            )
        ),
    )
    # Normal votes: each pair judged by OVERLAP distinct raters.
    who = distinct_triples(pairs, rng)
    vote_pair = np.repeat(np.arange(pairs), OVERLAP)
    vote_rater = who.ravel()
    # Gold votes: distinct (rater, gold item) combinations.
    combo_ids = rng.choice(RATERS * GOLD_ITEMS, size=gold_votes, replace=False)
    gold_rater, gold_item = combo_ids // GOLD_ITEMS, combo_ids % GOLD_ITEMS
    rater_index = np.r_[vote_rater, gold_rater]
    pair_index = np.r_[vote_pair, pairs + gold_item]
    n = rater_index.size
    is_gold = np.r_[np.zeros(vote_pair.size, bool), np.ones(gold_votes, bool)]
    swapped = rng.random(n) < 0.5
    # Which response is truly better: the stronger system; on gold the "good" (low) response.
    strong_low = np.r_[strength[low[vote_pair]] >= strength[high[vote_pair]], np.ones(gold_votes, bool)]
    kind = behaviour[rater_index]
    p_right = np.array([BEHAVIOURS[k][1] if BEHAVIOURS[k][1] is not None else 0.5 for k in kind])
    p_tie = np.array([BEHAVIOURS[k][2] for k in kind])
    right = rng.random(n) < p_right
    low_wins = np.where(right, strong_low, ~strong_low)
    # Screen side of the chosen response: low is on the left unless swapped.
    choice = np.where(low_wins ^ swapped, "b", "a").astype(object)
    roll = rng.random(n)
    choice = np.where(roll < p_tie / 2, "tie", np.where(roll < p_tie, "both_bad", choice))
    choice = np.where(kind == "always_a", "a", choice)
    seconds = np.where(kind == "too_fast", rng.uniform(1, 3, n), rng.lognormal(np.log(40), 0.5, n))
    created = rng.uniform(0, 30 * 86400, n)  # seconds before `now`, up to 30 days
    response_low = pair_low_response[pair_index]
    response_high = pair_high_response[pair_index]
    system_low = np.r_[system_ids[low[vote_pair]], np.zeros(gold_votes, int)]
    system_high = np.r_[system_ids[high[vote_pair]], np.zeros(gold_votes, int)]
    gold_correct = np.where(is_gold, (choice == "a") & ~swapped | (choice == "b") & swapped, False)
    helpfulness = np.where(rng.random(n) < 0.8, choice, rng.choice(["a", "b", "tie", "both_bad"], n))
    return np.rec.fromarrays(
        [
            np.full(n, study.pk),
            item_ids[np.r_[pair_item[vote_pair], items + gold_item]],
            pair_ids[pair_index],
            rater_ids[rater_index],
            np.where(swapped, response_high, response_low),
            np.where(swapped, response_low, response_high),
            np.where(swapped, system_high, system_low),
            np.where(swapped, system_low, system_high),
            choice.astype("U8"),
            helpfulness.astype("U8"),
            is_gold,
            gold_correct,
            (seconds * 1000).astype(np.int64),
            created + 120,  # seconds ago, as votes_insert and rows_insert read it: the newest two minutes ago
        ],
        names="study,item_of,pair,rater,resp_a,resp_b,sys_a,sys_b,choice,helpfulness,gold,correct,ms,at",
    )


def distinct_triples(pairs: int, rng: np.random.Generator) -> np.ndarray:
    """OVERLAP distinct raters per item pair, vectorised (redraw the rows with a repeat)."""
    who = rng.integers(0, RATERS, size=(pairs, OVERLAP))
    while True:
        ordered = np.sort(who, axis=1)
        bad = np.flatnonzero((ordered[:, 1:] == ordered[:, :-1]).any(axis=1))
        if bad.size == 0:
            return who
        who[bad] = rng.integers(0, RATERS, size=(bad.size, OVERLAP))


def next_ids(table: str, count: int) -> np.ndarray:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}")  # noqa: S608
        start = cursor.fetchone()[0] + 1
    return np.arange(start, start + count)


def votes_insert(votes: np.ndarray, *, new_votes: int) -> dict[str, Any]:
    """Insert all but the newest `new_votes` votes (with their tasks); return the rest for later."""
    order = np.argsort(-votes.at)  # `at` is seconds ago: oldest first
    votes = votes[order]
    held = votes[votes.size - new_votes :] if new_votes else votes[:0]
    log(f"inserting {votes.size - held.size:,} votes and their tasks")
    started = time.perf_counter()
    first_id = rows_insert(votes[: votes.size - held.size])
    log(f"inserted in {time.perf_counter() - started:.1f} s")
    return {"held": held, "first_vote_id": first_id}


def rows_insert(votes: np.ndarray) -> int:
    from django.db import connection, transaction
    from django.db.models import F

    from evaluations.models import Study

    base = datetime.now(UTC)
    at: list[Any] = [base - timedelta(seconds=float(s)) for s in votes.at.tolist()]
    task_ids: list[Any] = [uuid.uuid4() for _ in range(votes.size)]
    if connection.vendor != "postgresql":  # what Django stores on SQLite: naive UTC text, hex UUIDs
        at = [connection.ops.adapt_datetimefield_value(value) for value in at]
        task_ids = [value.hex for value in task_ids]
    vote_ids = next_ids("evaluations_vote", votes.size)
    with transaction.atomic():
        insert_rows(
            "evaluations_task",
            [
                "id",
                "study_id",
                "item_pair_id",
                "rater_id",
                "response_a_id",
                "response_b_id",
                "is_gold",
                "sampling_policy",
                "status",
                "leased_at",
                "expires_at",
                "finished_at",
                "skip_reason",
                "skip_note",
            ],
            list(
                zip(
                    task_ids,
                    votes.study.tolist(),
                    votes.pair.tolist(),
                    votes.rater.tolist(),
                    votes.resp_a.tolist(),
                    votes.resp_b.tolist(),
                    votes.gold.tolist(),
                    ["uniform"] * votes.size,
                    ["submitted"] * votes.size,
                    at,
                    at,
                    at,
                    [""] * votes.size,
                    [""] * votes.size,
                    strict=True,
                )
            ),
        )
        criteria = [
            json.dumps({"helpfulness": h, "accuracy": c})
            for h, c in zip(votes.helpfulness.tolist(), votes.choice.tolist(), strict=True)
        ]
        insert_rows(
            "evaluations_vote",
            [
                "id",
                "task_id",
                "study_id",
                "item_id",
                "rater_id",
                "system_a_id",
                "system_b_id",
                "choice",
                "criteria",
                "rationale",
                "is_gold",
                "swapped",
                "gold_correct",
                "duration_ms",
                "quality_status",
                "quality_reason",
                "created_at",
            ],
            list(
                zip(
                    vote_ids.tolist(),
                    task_ids,
                    votes.study.tolist(),
                    votes.item_of.tolist(),
                    votes.rater.tolist(),
                    [s or None for s in votes.sys_a.tolist()],
                    [s or None for s in votes.sys_b.tolist()],
                    votes.choice.tolist(),
                    criteria,
                    [""] * votes.size,
                    votes.gold.tolist(),
                    (votes.resp_a > votes.resp_b).tolist(),
                    [c if g else None for c, g in zip(votes.correct.tolist(), votes.gold.tolist(), strict=True)],
                    votes.ms.tolist(),
                    ["included"] * votes.size,
                    [""] * votes.size,
                    at,
                    strict=True,
                )
            ),
        )
        sequences_reset(["evaluations_vote"])
        for study_id, count in zip(*np.unique(votes.study, return_counts=True), strict=True):
            Study.objects.filter(pk=int(study_id)).update(votes_count=F("votes_count") + int(count))
    _analyze()
    return int(vote_ids[0]) if vote_ids.size else 0


def _analyze() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        # VACUUM as autovacuum would after a bulk load: it sets the visibility map, which lets the
        # refresh read every vote's time from the index alone, as it does on a settled table.
        cursor.execute("VACUUM ANALYZE")


# --- Measuring ----------------------------------------------------------------------------------------------


def refresh_measured(*, full: bool, profile: bool = False) -> dict[str, Any]:
    import cProfile
    import pstats

    from crowdplatform.quality.refresh import signals_refresh

    profiler = cProfile.Profile() if profile else None
    with measured() as (queries, timing):
        if profiler is not None:
            profiler.enable()
        report = signals_refresh(full=full)
        if profiler is not None:
            profiler.disable()
    if profiler is not None:  # to stderr: where the time goes (the timing includes the profiler's cost)
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(30)
    return {
        "seconds": round(timing["seconds"], 3),
        "phases": {name: round(seconds, 3) for name, seconds in sorted(report.phases.items())},
        "statements": queries.count,
        "statement_seconds": round(queries.seconds, 3),
        "studies": report.studies,
        "votes_loaded": report.votes,
        "models_run": report.models_run,
        "studies_whole": report.whole,
        "studies_folded": report.folded,
        "studies_recounted": report.recounted,
        "rows_written": report.rows_written,
        "raters_changed": len(set().union(*report.changed.values())),
    }


def verify(total_votes: int) -> list[dict[str, Any]]:
    from crowdplatform.quality.models import RaterSignal, StudySignal
    from evaluations.models import Vote

    per_study = Vote.objects.values("study_id", "rater_id").distinct().count()
    raters = Vote.objects.values("rater_id").distinct().count()
    checks = [
        ("per-study rows", RaterSignal.objects.filter(study__isnull=False).count(), per_study),
        ("overall rows", RaterSignal.objects.filter(study__isnull=True).count(), raters),
        ("study votes", sum(StudySignal.objects.values_list("votes", flat=True)), total_votes),
    ]
    return [{"check": name, "ok": got == want, "got": got, "want": want} for name, got, want in checks]


def signal_rows() -> dict[tuple[int, int | None], tuple[Any, ...]]:
    from crowdplatform.quality.models import RaterSignal
    from crowdplatform.quality.refresh import SIGNAL_FIELDS

    # Model skills are left out: an incremental refresh of a large study keeps the last full one's.
    fields = [name for name in SIGNAL_FIELDS if name not in ("ds_skill", "nbt_skill")]
    return {
        (row[0], row[1]): tuple(row[2:])
        for row in RaterSignal.objects.values_list("rater_id", "study_id", *fields).iterator(chunk_size=5000)
    }


def rows_compared(incremental: dict[Any, Any], full: dict[Any, Any]) -> dict[str, Any]:
    differing = sum(1 for key in full.keys() | incremental.keys() if full.get(key) != incremental.get(key))
    return {
        "check": "incremental rows equal a full refresh's (models aside)",
        "ok": differing == 0,
        "got": differing,
        "want": 0,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--votes", type=int, default=1_000_000)
    parser.add_argument("--new-votes", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--profile", action="store_true", help="print a profile of the incremental refresh (stderr)")
    parser.add_argument("--no-record", action="store_true", help="do not write benchmarks/results/")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    database = _database(os.environ.get("DATABASE_URL"))
    try:
        database.create()
    except Exception as error:
        print(f"Could not create the benchmark database {database.name}: {error}", file=sys.stderr)
        return 2
    try:
        return run(args, database)
    finally:
        if not args.keep_db:
            database.drop()


def run(args: argparse.Namespace, database: Database) -> int:
    django_setup(database)
    from django.core.management import call_command

    log(f"migrating the {database.vendor} database {database.name}")
    call_command("migrate", verbosity=0, interactive=False)
    started = time.perf_counter()
    built = build(args.votes, args.new_votes, args.seed)
    build_seconds = time.perf_counter() - started

    log("full refresh")
    full = refresh_measured(full=True)
    log(f"full refresh: {full['seconds']:.1f} s {full['phases']}")
    rows_insert(built["held"])
    log(f"incremental refresh after {built['held'].size} new votes")
    incremental = refresh_measured(full=False, profile=args.profile)
    log(f"incremental refresh: {incremental['seconds']:.2f} s {incremental['phases']}")
    checks = verify(args.votes + built["held"].size)
    folded_rows = signal_rows()
    log("full refresh again, to compare its rows with the incremental ones")
    again = refresh_measured(full=True)
    checks.append(rows_compared(folded_rows, signal_rows()))

    summary = {
        "benchmark": "quality_refresh",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "database": database.server_version(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "shape": {
            "votes": args.votes,
            "new_votes": int(built["held"].size),
            "studies": STUDIES,
            "systems_per_study": SYSTEMS,
            "overlap": OVERLAP,
            "raters": RATERS,
            "gold_share": GOLD_SHARE,
        },
        "build_seconds": round(build_seconds, 1),
        "full": full,
        "incremental": incremental,
        "full_again": again,
        "targets": {"full_seconds": 60, "incremental_seconds": 2},
        "met": {"full": full["seconds"] < 60, "incremental": incremental["seconds"] < 2},
        "checks": checks,
    }
    summary_report("quality_refresh", summary, record=not args.no_record)
    return 0 if all(check["ok"] for check in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
