"""Vote export benchmark: a 1,000,000-vote study streamed as JSON Lines, CSV and Parquet.

    DATABASE_URL=postgres://... .venv/bin/python benchmarks/export_votes.py [--votes 1000000] [--keep-db]
        [--reuse-db] [--formats jsonl,csv,parquet] [--no-record]

The issue's figures: at least 200,000 votes/s streamed from PostgreSQL, with peak memory under 300 MB,
on a 1,000,000-vote study.

What it does, in order:

1. The database: a throwaway `<name>_exports_bench` next to DATABASE_URL's (benchmarks/benchlib.py),
   PostgreSQL only (SQLite has no COPY: its export path is the plain Python one, not what is measured).
   Schema from the migrations, production settings (DEBUG off).
2. The data: benchmarks/quality_refresh.py's builder (imported, not copied) with ONE study instead of
   its four: 8 systems, 2,000 raters, overlap 3, 2 criteria, 5% gold votes, all inserted with COPY.
3. For each measurement, a fresh Python process (so building the data does not inflate its peak
   memory) sets Django up, signs a staff user in with Django's test client, warms up with an empty
   export (as a running server has its code loaded) and GETs /api/v1/studies/{id}/votes.<format>:
   the same view, streaming and COPY the API serves. It
   consumes the chunks (discarding them, keeping only a count of lines and Parquet's footer),
   and reports the time from the request to the last byte, the rows, the bytes, and the process's
   peak RSS (`ru_maxrss`) before and after.
4. Checks: the rows streamed equal the study's count for the filters; the Parquet footer's row count too.
   Prints a JSON summary and writes it to benchmarks/results/export_votes-<UTC time>.json.

Measured: the default export (gold votes left out, so 95% of the votes) in each format, and JSON Lines
with `gold=include` (every one of the 1,000,000 votes).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from benchlib import Database, summary_report  # benchmarks/benchlib.py (on sys.path for scripts)

BENCH_SUFFIX = "_exports_bench"
TARGET_VOTES_PER_S = 200_000
TARGET_PEAK_MB = 300
MEASUREMENTS = [
    ("jsonl", {}),
    ("csv", {}),
    ("parquet", {}),
    ("jsonl", {"gold": "include"}),
]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def django_setup(database_url: str) -> None:
    """quality_refresh's setup (production settings) on the benchmark database; the test client's
    host must be allowed and served over plain HTTP."""
    os.environ["ALLOWED_HOSTS"] = "testserver"
    os.environ["SECURE_SSL_REDIRECT"] = "0"
    import quality_refresh  # benchmarks/quality_refresh.py

    quality_refresh.django_setup(SimpleNamespace(url=database_url))


def peak_mb() -> float:
    """The process's peak resident memory. Linux's VmHWM belongs to this program alone; `ru_maxrss`
    would start from the parent's peak (it survives the fork and exec of a subprocess)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


# --- Building (parent process) ---------------------------------------------------------------------------


def build(votes: int, seed: int) -> int:
    """One study of `votes` votes with quality_refresh's builder (its STUDIES set to 1). Returns the study id."""
    import quality_refresh

    from evaluations.models import Study

    quality_refresh.STUDIES = 1  # the builder reads it when called; its file is left as it is
    quality_refresh.build(votes, 0, seed)
    return Study.objects.get().pk


def existing_study() -> int | None:
    from evaluations.models import Study

    study = Study.objects.order_by("pk").first()
    return study.pk if study is not None else None


# --- Measuring (child process) ---------------------------------------------------------------------------


def parquet_rows(tail: bytes) -> int:
    """The row count in a Parquet file's footer, from the file's last bytes alone."""
    import pyarrow.parquet as pq

    footer_length = int.from_bytes(tail[-8:-4], "little")
    footer = tail[-8 - footer_length :]
    return pq.read_metadata(io.BytesIO(b"PAR1" + footer)).num_rows


def measure(study_id: int, export_format: str, params: dict[str, str]) -> dict[str, Any]:
    from urllib.parse import urlencode

    from django.test import Client

    from crowdplatform.accounts.models import User
    from evaluations import exports
    from evaluations.models import Study

    study = Study.objects.get(pk=study_id)
    plan = exports.export_plan(study=study, filters=exports.export_filters_parse(study=study, params=params))
    expected = exports.export_rows_count(plan=plan)
    staff, _ = User.objects.get_or_create(
        email="bench-staff@bench.example",
        defaults={"is_staff": True, "is_superuser": True, "account_type": "client", "password": "!"},
    )
    client = Client()
    client.force_login(staff)
    path = f"/api/v1/studies/{study_id}/votes.{export_format}"
    # Warm-up, as a running server is: an empty export (after the last vote) loads the code it needs.
    warm = client.get(f"{path}?{urlencode({**params, 'after_id': plan.last_id})}")
    for _ in warm.streaming_content:
        pass
    url = path + (f"?{urlencode(params)}" if params else "")
    rss_before = peak_mb()

    started = time.perf_counter()
    response = client.get(url)
    first_byte = None
    size = lines = chunks = 0
    tail = b""
    for chunk in response.streaming_content:
        if first_byte is None:
            first_byte = time.perf_counter() - started
        size += len(chunk)
        chunks += 1
        lines += chunk.count(b"\n")
        if export_format == "parquet":
            tail = (tail + chunk)[-8 * 1024 * 1024 :]
    response.close()
    seconds = time.perf_counter() - started

    streamed = parquet_rows(tail) if export_format == "parquet" else lines - (export_format == "csv")
    return {
        "format": export_format,
        "params": params,
        "status": response.status_code,
        "rows": streamed,
        "rows_expected": expected,
        "bytes": size,
        "chunks": chunks,
        "seconds": round(seconds, 3),
        "first_byte_seconds": round(first_byte or 0.0, 3),
        "votes_per_s": round(streamed / seconds),
        "mb_per_s": round(size / seconds / 1e6, 1),
        "peak_rss_mb_before": round(rss_before, 1),
        "peak_rss_mb": round(peak_mb(), 1),
    }


def child(args: argparse.Namespace) -> int:
    django_setup(args.database_url)
    print(json.dumps(measure(args.study, args.measure, json.loads(args.params))))
    return 0


def measured_in_subprocess(
    database_url: str, study_id: int, export_format: str, params: dict[str, str]
) -> dict[str, Any]:
    command = [
        sys.executable,
        __file__,
        "--measure",
        export_format,
        "--study",
        str(study_id),
        "--params",
        json.dumps(params),
        "--database-url",
        database_url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=os.environ.copy())  # noqa: S603
    if done.returncode != 0:
        raise SystemExit(f"measurement {export_format} {params} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- Main ---------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--votes", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--keep-db", action="store_true", help="leave the benchmark database for another run")
    parser.add_argument("--reuse-db", action="store_true", help="measure the study a --keep-db run left")
    parser.add_argument("--formats", default="jsonl,csv,parquet", help="which default-filter exports to measure")
    parser.add_argument("--no-record", action="store_true", help="do not write benchmarks/results/")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # child process: one measurement
    parser.add_argument("--study", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--params", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.measure:
        return child(args)
    database = Database(os.environ.get("DATABASE_URL"), suffix=BENCH_SUFFIX, prefix="exports-bench-")
    if not database.postgres:
        raise SystemExit(
            "Run it against PostgreSQL (DATABASE_URL=postgres://...): the export streams through COPY there; "
            "on SQLite it takes the plain Python path, which is not what the target is about."
        )
    if not args.reuse_db:
        database.create()
    try:
        return run(args, database)
    finally:
        if not args.keep_db:
            database.drop()


def run(args: argparse.Namespace, database: Database) -> int:
    django_setup(database.url)
    from django.core.management import call_command

    study_id = existing_study() if args.reuse_db else None
    build_seconds = 0.0
    if study_id is None:
        log(f"migrating {database.name}")
        call_command("migrate", verbosity=0, interactive=False)
        log(f"building one study of {args.votes:,} votes")
        started = time.perf_counter()
        study_id = build(args.votes, args.seed)
        build_seconds = time.perf_counter() - started
        log(f"built in {build_seconds:.0f} s")
    from evaluations.models import Vote

    votes = Vote.objects.filter(study_id=study_id).count()
    from django.db import connections

    connections.close_all()  # the children open their own

    formats = args.formats.split(",")
    results = []
    for export_format, params in MEASUREMENTS:
        if not params and export_format not in formats:
            continue
        log(f"measuring {export_format} {params or ''}")
        result = measured_in_subprocess(database.url, study_id, export_format, params)
        log(
            f"{export_format} {params or ''}: {result['rows']:,} rows in {result['seconds']} s = "
            f"{result['votes_per_s']:,} votes/s, {result['mb_per_s']} MB/s, peak RSS {result['peak_rss_mb']} MB"
        )
        results.append(result)

    checks = [
        {
            "check": f"{r['format']} {r['params']} rows streamed equal the count",
            "ok": r["status"] == 200 and r["rows"] == r["rows_expected"],
            "got": r["rows"],
            "want": r["rows_expected"],
        }
        for r in results
    ]
    summary = {
        "benchmark": "export_votes",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "database": database.server_version(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "study_votes": votes,
        "build_seconds": round(build_seconds, 1),
        "results": results,
        "targets": {"votes_per_s": TARGET_VOTES_PER_S, "peak_rss_mb": TARGET_PEAK_MB},
        "met": {
            f"{r['format']}{'+' + ','.join(f'{k}={v}' for k, v in r['params'].items()) if r['params'] else ''}": {
                "votes_per_s": r["votes_per_s"] >= TARGET_VOTES_PER_S,
                "peak_rss": r["peak_rss_mb"] < TARGET_PEAK_MB,
            }
            for r in results
        },
        "checks": checks,
    }
    summary_report("export_votes", summary, record=not args.no_record)
    return 0 if all(check["ok"] for check in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
