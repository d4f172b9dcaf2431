"""Transparency report benchmark: the public `/transparency/` page and its API over a 1,000,000-vote leaderboard.

    DATABASE_URL=postgres://... .venv/bin/python benchmarks/transparency_report.py [--votes 1000000]
        [--repeats 7] [--keep-db] [--reuse-db] [--profile] [--no-record]

No target: the page is public and unauthenticated, so what one view costs is the question. Both the
page and `GET /api/v1/transparency/` read `crowdplatform.integrity.report.transparency_reports()`: per
leaderboard a cached report (TRANSPARENCY_REPORT_CACHE_SECONDS), computed on a miss from the sampling
aggregate over the study's tasks, votes per system, the released periods, and the release chain verified
(each released file's digest remembered while its size and time stay the same).

What it does, in order:

1. The database: a throwaway `<name>_transparency_bench` next to DATABASE_URL's (benchmarks/benchlib.py),
   PostgreSQL only. Schema from the migrations, production settings (DEBUG off); the "private" storage
   (PRIVATE_MEDIA_ROOT, where releases are written) points at `<tmp>/<database name>-private`, removed
   with the database unless --keep-db.
2. The data: export_votes.py's one study (benchmarks/quality_refresh.py's builder, imported, not copied):
   8 systems, 2,000 raters, overlap 3, 2 criteria, 5% gold votes, votes over the last 30 days, COPY.
   The builder sets each task's `leased_at` to its vote's `created_at` (what `sampling_report` groups by
   day) but leaves `sampling_probability` NULL and `sampling_policy` "uniform", so one SQL UPDATE gives
   the non-gold tasks "active" with probability 1/28 (28 pairs of 8 systems). Then VACUUM ANALYZE. (Until
   2026-12-06 the builder dated every vote in January 1970; the first runs shifted the dates here.)
3. The leaderboard, through the ORM (a few rows): the study public with sampling "active"; a
   PublicLeaderboard starting at the first vote's day (midnight UTC), 7-day periods (so 30 days of votes
   make 4 ended periods), other parameters at their defaults, and its PolicyVersion 1; 4 providers (one per
   license class, two proprietary), one Submission per system (provider A has 3 systems, so the retirement
   rule retires its oldest; 3 are pre-release), registered at the leaderboard's start (before the first
   vote), windows ended.
4. Publishing, measured: `results_publish_due(now)` (the leaderboard with PUBLISH_BOOTSTRAP=1000 rounds),
   `retirements_apply(now)`, `releases_due(now)` (each ended period's votes rendered as the JSONL export
   and written, hashed and chained): seconds, files and sizes.
5. Measured, in this process through Django's test client, anonymous, after one warm-up request each,
   in three modes (MODES): "cold" (the cache emptied before each request: the report computed and every
   released file re-read), "report_expired" (TRANSPARENCY_REPORT_CACHE_SECONDS=0: the report computed,
   the files' digests remembered), and "cached" (as served: what nearly every view costs):
   `GET /transparency/` and `GET /api/v1/transparency/`, `--repeats` times each (min and median), with the
   statements run per request (a connection.execute_wrapper counter) and where the time goes: the
   sampling aggregate, the chain verification (of which file hashing), the rest of the report, the SVG
   charts, the template (page) or the JSON (API). The phases are timed by wrapping the functions where the
   views and the report look them up (module attributes); nothing in the app is changed. The slowest
   statements of one page view are listed and the slowest is EXPLAINed (ANALYZE, BUFFERS).
   The anonymous API throttle (AnonRateThrottle, counted in the local-memory cache) is raised so the
   repeated requests are never refused; it still runs.
6. Checks: both answer 200; the chain verifies; the report's votes equal the study's non-gold tasks'.
   Prints a JSON summary and writes it to benchmarks/results/transparency_report-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import hashlib
import os
import platform
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from benchlib import Database, summary_report  # benchmarks/benchlib.py (on sys.path for scripts)

BENCH_SUFFIX = "_transparency_bench"
PERIOD_DAYS = 7
SLUG = "bench-arena"
PAGE = "/transparency/"
API = "/api/v1/transparency/"
# (provider, license class, [(system index, pre-release)]) in registration order within each provider.
PROVIDERS = [
    ("Acme AI", "proprietary", [(0, False), (1, False), (2, True)]),
    ("Open Weights Co", "open_weights", [(3, False), (4, True)]),
    ("Commons Lab", "open_source", [(5, False), (6, False)]),
    ("Beta Labs", "proprietary", [(7, True)]),
]


load_at_start: list[float] = []  # other load on the machine when the run began


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def private_root(database: Database) -> Path:
    return Path(tempfile.gettempdir()) / f"{database.name}-private"


def django_setup(database: Database) -> None:
    """quality_refresh's setup (production settings) on the benchmark database, the private storage in a
    temporary folder, the test client's host allowed over plain HTTP, the anonymous throttle out of reach."""
    os.environ["ALLOWED_HOSTS"] = "testserver"
    os.environ["SECURE_SSL_REDIRECT"] = "0"
    os.environ["PRIVATE_MEDIA_ROOT"] = str(private_root(database))
    os.environ["API_THROTTLE_ANON"] = "1000000/hour"
    import quality_refresh  # benchmarks/quality_refresh.py

    quality_refresh.django_setup(SimpleNamespace(url=database.url))


# --- Building ---------------------------------------------------------------------------------------------


def build(votes: int, seed: int) -> int:
    """export_votes.py's one study (quality_refresh's builder), its tasks' sampling fields set as the
    active policy records them. Returns the study id."""
    import export_votes
    from django.db import connection

    study_id = export_votes.build(votes, seed)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE evaluations_task SET sampling_probability = CASE WHEN is_gold THEN NULL ELSE %s END, "
            "sampling_policy = CASE WHEN is_gold THEN sampling_policy ELSE 'active' END WHERE study_id = %s",
            [1 / 28, study_id],
        )
        cursor.execute("VACUUM ANALYZE")
    return study_id


def leaderboard_make(study_id: int) -> Any:
    """The study as a public leaderboard with its providers' submissions, through the ORM."""
    from django.db import transaction

    from crowdplatform.integrity.models import PolicyVersion, Provider, PublicLeaderboard, Submission
    from crowdplatform.integrity.services import parameters_of
    from evaluations.models import Study, System, Vote

    first_vote = Vote.objects.filter(study_id=study_id).order_by("created_at").values_list("created_at", flat=True)[0]
    starts_at = datetime.combine(first_vote.astimezone(UTC).date(), datetime.min.time(), tzinfo=UTC)
    systems = list(System.objects.filter(study_id=study_id).order_by("pk"))
    with transaction.atomic():
        Study.objects.filter(pk=study_id).update(is_public=True, sampling="active")
        leaderboard = PublicLeaderboard.objects.create(
            study_id=study_id, name="Bench arena", slug=SLUG, starts_at=starts_at, period_days=PERIOD_DAYS
        )
        PolicyVersion.objects.create(
            leaderboard=leaderboard,
            number=1,
            text="Every provider is sampled alike; every submission's result is published.",
            parameters=parameters_of(leaderboard),
            effective_at=starts_at,
        )
        order = 0
        for name, license_class, entries in PROVIDERS:
            provider = Provider.objects.create(name=name, slug=name.lower().replace(" ", "-"))
            for index, prerelease in entries:
                # Seconds apart (so "newer" is defined for the retirement rule), all before the first vote.
                registered_at = min(starts_at + timedelta(seconds=order), first_vote - timedelta(seconds=8 - order))
                order += 1
                system = systems[index]
                System.objects.filter(pk=system.pk).update(provider=name, registered_at=registered_at)
                Submission.objects.create(
                    leaderboard=leaderboard,
                    provider=provider,
                    system=system,
                    license_class=license_class,
                    prerelease=prerelease,
                    period_start=starts_at,
                    registered_at=registered_at,
                    window_ends_at=registered_at + timedelta(days=leaderboard.window_days),
                )
    return leaderboard


@contextmanager
def each_call_timed(module: Any, name: str, into: list[float]) -> Iterator[None]:
    original = getattr(module, name)

    @functools.wraps(original)
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            into.append(time.perf_counter() - started)

    setattr(module, name, timed)
    try:
        yield
    finally:
        setattr(module, name, original)


def publish(now: datetime) -> dict[str, Any]:
    from crowdplatform.integrity import publishing
    from crowdplatform.integrity.models import PeriodRelease, PublishedResult

    started = time.perf_counter()
    results = publishing.results_publish_due(now=now)
    results_seconds = time.perf_counter() - started
    started = time.perf_counter()
    retired = publishing.retirements_apply(now=now)
    retire_seconds = time.perf_counter() - started
    renders: list[float] = []
    with each_call_timed(publishing, "_battles_render", renders):
        started = time.perf_counter()
        released = publishing.releases_due(now=now)
        release_seconds = time.perf_counter() - started
    root = Path(os.environ["PRIVATE_MEDIA_ROOT"])
    files = [
        {
            "period_start": release.period_start.date().isoformat(),
            "battles": release.battles,
            "size_bytes": release.size_bytes,
            "size_on_disk_bytes": (root / release.file_name).stat().st_size,
            "render_seconds": round(seconds, 3),
        }
        for release, seconds in zip(PeriodRelease.objects.order_by("period_start"), renders, strict=False)
    ]
    return {
        "now": now.isoformat(timespec="seconds"),
        "results_publish_due": {
            "seconds": round(results_seconds, 3),
            "rows": results,
            "provisional": PublishedResult.objects.filter(provisional=True).count(),
        },
        "retirements_apply": {"seconds": round(retire_seconds, 3), "retired": retired},
        "releases_due": {
            "seconds": round(release_seconds, 3),
            "releases": released,
            "battles": sum(f["battles"] for f in files),
            "bytes": sum(f["size_bytes"] for f in files),
            "files": files,
        },
    }


# --- Measuring ----------------------------------------------------------------------------------------------


class StatementLog:
    """Every statement run where it is installed: its SQL, parameters and time."""

    def __init__(self) -> None:
        self.statements: list[tuple[float, str, Any]] = []

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.statements.append((time.perf_counter() - started, sql, params))


class Phases:
    """Where a request's time goes, by wrapping the functions the views and the report call (module
    attributes, looked up at call time) for the duration of the measurement."""

    def __init__(self) -> None:
        self.calls: dict[str, list[float]] = defaultdict(list)
        self.hashed_bytes = 0

    @contextmanager
    def installed(self) -> Iterator[None]:
        from contextlib import ExitStack

        from crowdplatform.integrity import api, report, selectors, views

        wrapped = [
            (views, "transparency_reports", "report"),
            (api, "transparency_reports", "report"),
            (report, "sampling_report", "sampling_report"),
            (report, "release_chain_verify", "release_chain_verify"),
            (selectors, "stored_file_sha256", "file_hashing"),
            (report, "_votes_by_system", "votes_by_system"),
            (report, "_released_battles_by_system", "released_battles_by_system"),
            (report, "latest_results", "latest_results"),
            (views, "share_bars", "charts"),
            (views, "share_over_time", "charts"),
            (views, "share_table", "charts"),
            (views, "render", "template"),
            (api, "report_as_dict", "report_as_dict"),
        ]
        with ExitStack() as stack:
            for module, name, phase in wrapped:
                stack.enter_context(each_call_timed(module, name, self.calls[phase]))
            yield

    def reset(self) -> None:
        for calls in self.calls.values():
            calls.clear()

    def seconds(self, phase: str) -> float:
        return sum(self.calls.get(phase, []))


def one_request(client: Any, path: str, phases: Phases) -> dict[str, Any]:
    from django.db import connection

    statements = StatementLog()
    phases.reset()
    with connection.execute_wrapper(statements):
        started = time.perf_counter()
        response = client.get(path)
        body = response.content
        seconds = time.perf_counter() - started
    report = phases.seconds("report")
    named = {name: phases.seconds(name) for name in ("sampling_report", "release_chain_verify")}
    others = {
        name: phases.seconds(name) for name in ("votes_by_system", "released_battles_by_system", "latest_results")
    }
    breakdown = {
        "sampling_report": named["sampling_report"],
        "release_chain_verify": named["release_chain_verify"],
        "of_which_file_hashing": phases.seconds("file_hashing"),
        "votes_by_system": others["votes_by_system"],
        "released_battles_by_system": others["released_battles_by_system"],
        "report_rest": report - sum(named.values()) - sum(others.values()),
    }
    if path == PAGE:
        breakdown["charts_svg"] = phases.seconds("charts")
        breakdown["template"] = phases.seconds("template")
        breakdown["request_rest"] = seconds - report - breakdown["charts_svg"] - breakdown["template"]
    else:
        breakdown["report_as_dict"] = phases.seconds("report_as_dict")
        breakdown["json_and_request_rest"] = seconds - report - breakdown["report_as_dict"]
    return {
        "status": response.status_code,
        "bytes": len(body),
        "seconds": seconds,
        "report_seconds": report,
        "breakdown": breakdown,
        "statements": len(statements.statements),
        "statement_seconds": sum(s for s, _, _ in statements.statements),
        "log": statements.statements,
    }


MODES = {
    # Nothing remembered: the first view after the files changed (every release re-read).
    "cold": "cache emptied before each request",
    # The report's entry expired (every TRANSPARENCY_REPORT_CACHE_SECONDS): recomputed, files remembered.
    "report_expired": "TRANSPARENCY_REPORT_CACHE_SECONDS=0; released files' digests remembered",
    # What nearly every view costs: the report served from the cache.
    "cached": "as served (report cached per leaderboard)",
}


@contextmanager
def mode_set(mode: str) -> Iterator[None]:
    from django.conf import settings

    kept = settings.TRANSPARENCY_REPORT_CACHE_SECONDS
    if mode == "report_expired":
        settings.TRANSPARENCY_REPORT_CACHE_SECONDS = 0
    try:
        yield
    finally:
        settings.TRANSPARENCY_REPORT_CACHE_SECONDS = kept


def measure(path: str, repeats: int, phases: Phases, mode: str = "cached") -> dict[str, Any]:
    from django.core.cache import cache
    from django.test import Client

    def request() -> dict[str, Any]:
        if mode == "cold":
            cache.clear()
        return one_request(client, path, phases)

    client = Client()  # anonymous
    with mode_set(mode):
        if mode == "report_expired":
            cache.clear()  # no entry left from an earlier mode; from now on each one expires at once
        warm = request()
        machine_before, own_before = machine_busy_seconds(), time.process_time()
        runs = [request() for _ in range(repeats)]
        machine_cpu, own_cpu = machine_busy_seconds() - machine_before, time.process_time() - own_before

    def spread(values: list[float]) -> dict[str, float]:
        return {"min": round(min(values), 4), "median": round(statistics.median(values), 4)}

    return {
        "path": path,
        "mode": MODES[mode],
        "status": sorted({run["status"] for run in runs}),
        "bytes": runs[-1]["bytes"],
        "warm_up_seconds": round(warm["seconds"], 4),
        "seconds": spread([run["seconds"] for run in runs]),
        "seconds_each": [round(run["seconds"], 4) for run in runs],
        "statements": sorted({run["statements"] for run in runs}),
        "statement_seconds": spread([run["statement_seconds"] for run in runs]),
        # What one view costs the machine: this process (Django) and everything else busy meanwhile
        # (PostgreSQL's backend and its parallel workers; any other load shows up here too).
        "cpu_seconds_per_request": {
            "django_process": round(own_cpu / repeats, 3),
            "machine_busy": round(machine_cpu / repeats, 3),
        },
        "breakdown_seconds": {name: spread([run["breakdown"][name] for run in runs]) for name in runs[0]["breakdown"]},
        "_last_log": runs[-1]["log"],
    }


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all cores, not idle or waiting on I/O) since boot."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def slowest_statements(log: list[tuple[float, str, Any]], count: int = 6) -> list[dict[str, Any]]:
    return [
        {"seconds": round(seconds, 4), "sql": sql if len(sql) <= 400 else sql[:400] + " ..."}
        for seconds, sql, _ in sorted(log, key=lambda entry: -entry[0])[:count]
    ]


def explained(log: list[tuple[float, str, Any]]) -> list[str]:
    from django.db import connection

    _, sql, params = max(log, key=lambda entry: entry[0])
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
        return [row[0] for row in cursor.fetchall()]


def hashing_alone() -> dict[str, Any]:
    """The released files hashed once more outside any request (warm page cache): the floor of verification."""
    from crowdplatform.integrity.models import PeriodRelease

    root = Path(os.environ["PRIVATE_MEDIA_ROOT"])
    total = 0
    started = time.perf_counter()
    for name in PeriodRelease.objects.values_list("file_name", flat=True):
        digest = hashlib.sha256()
        with open(root / name, "rb") as handle:
            while chunk := handle.read(1024 * 1024):
                digest.update(chunk)
                total += len(chunk)
    seconds = time.perf_counter() - started
    return {"bytes": total, "seconds": round(seconds, 4), "mb_per_s": round(total / seconds / 1e6, 1)}


def profiled(path: str) -> None:
    from django.test import Client

    client = Client()
    profiler = cProfile.Profile()
    profiler.enable()
    client.get(path)
    profiler.disable()
    print(f"--- profile of GET {path} ---", file=sys.stderr)
    pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(35)


def checks_run(page: dict[str, Any], api_result: dict[str, Any], study_id: int, *, mode: str) -> list[dict[str, Any]]:
    from crowdplatform.integrity.models import PublicLeaderboard
    from crowdplatform.integrity.report import transparency_report
    from evaluations.models import Task

    report = transparency_report(leaderboard=PublicLeaderboard.objects.get(slug=SLUG))
    submitted = Task.objects.filter(study_id=study_id, is_gold=False, status="submitted").count()
    return [
        {"check": f"page answers 200 ({mode})", "ok": page["status"] == [200], "got": page["status"], "want": [200]},
        {
            "check": f"API answers 200 ({mode})",
            "ok": api_result["status"] == [200],
            "got": api_result["status"],
            "want": [200],
        },
        {"check": "release chain verifies", "ok": report.chain_verified, "got": report.chain_verified, "want": True},
        {
            "check": "report's votes equal the non-gold submitted tasks",
            "ok": report.votes == submitted,
            "got": report.votes,
            "want": submitted,
        },
    ]


# --- Main ---------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--votes", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--repeats", type=int, default=7, help="measured requests per URL after the warm-up")
    parser.add_argument("--keep-db", action="store_true", help="leave the database and released files for another run")
    parser.add_argument("--reuse-db", action="store_true", help="measure the leaderboard a --keep-db run left")
    parser.add_argument("--profile", action="store_true", help="print a profile of one page view (stderr)")
    parser.add_argument("--no-record", action="store_true", help="do not write benchmarks/results/")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    global load_at_start
    load_at_start = [round(value, 2) for value in os.getloadavg()]
    database = Database(os.environ.get("DATABASE_URL"), suffix=BENCH_SUFFIX, prefix="transparency-bench-")
    if not database.postgres:
        raise SystemExit("Run it against PostgreSQL (DATABASE_URL=postgres://...): the figures are about production.")
    if not args.reuse_db:
        database.create()
        shutil.rmtree(private_root(database), ignore_errors=True)
    try:
        return run(args, database)
    finally:
        if not args.keep_db:
            database.drop()
            shutil.rmtree(private_root(database), ignore_errors=True)


def existing_study() -> int | None:
    from crowdplatform.integrity.models import PublicLeaderboard

    leaderboard = PublicLeaderboard.objects.filter(slug=SLUG).first()
    return leaderboard.study_id if leaderboard is not None else None


def run(args: argparse.Namespace, database: Database) -> int:
    django_setup(database)
    from django.core.management import call_command
    from django.utils import timezone

    from evaluations.models import Vote

    study_id = existing_study() if args.reuse_db else None
    build_seconds = 0.0
    publishing: dict[str, Any] | None = None
    if study_id is None:
        log(f"migrating {database.name}")
        call_command("migrate", verbosity=0, interactive=False)
        log(f"building one study of {args.votes:,} votes")
        started = time.perf_counter()
        study_id = build(args.votes, args.seed)
        build_seconds = time.perf_counter() - started
        log(f"built in {build_seconds:.0f} s; making it a public leaderboard")
        leaderboard_make(study_id)
        publishing = publish(timezone.now())
        log(
            f"published in {publishing['results_publish_due']['seconds']} s, released "
            f"{publishing['releases_due']['releases']} periods in {publishing['releases_due']['seconds']} s"
        )
    votes = Vote.objects.filter(study_id=study_id).count()

    phases = Phases()
    results = {}
    with phases.installed():
        for mode in MODES:
            for name, path in (("page", PAGE), ("api", API)):
                log(f"measuring GET {path} x {args.repeats}, {mode}")
                results[f"{name}_{mode}"] = measure(path, args.repeats, phases, mode)
                figures = results[f"{name}_{mode}"]
                log(f"GET {path} ({mode}): median {figures['seconds']['median']} s, statements {figures['statements']}")
    page_log = results["page_cold"]["_last_log"]
    for figures in results.values():
        figures.pop("_last_log")
    if args.profile:
        profiled(PAGE)
    checks = [
        check
        for mode in MODES
        for check in checks_run(results[f"page_{mode}"], results[f"api_{mode}"], study_id, mode=mode)
    ]

    summary = {
        "benchmark": "transparency_report",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "database": database.server_version(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "load_average_at_start": load_at_start,
        "study_votes": votes,
        "build_seconds": round(build_seconds, 1),
        "reused_db": bool(args.reuse_db and publishing is None),
        "publishing": publishing,
        "repeats": args.repeats,
        **results,
        "hashing_alone": hashing_alone(),
        "page_slowest_statements": slowest_statements(page_log),
        "page_slowest_statement_plan": explained(page_log),
        "checks": checks,
    }
    summary_report("transparency_report", summary, record=not args.no_record)
    return 0 if all(check["ok"] for check in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
