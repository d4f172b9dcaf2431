"""Task-cycle load benchmark: concurrent raters doing next-task + vote through the real API on PostgreSQL.

    .venv/bin/python benchmarks/task_cycle.py [--raters 32] [--duration 30] [--workers N] [options]

The issue's target: with 32 concurrent raters on PostgreSQL, full next-task + vote cycles through the API,
>= 300 cycles/s with p99 < 100 ms on the 2-core machine, and zero double assignments.

What it does, in order:

1. Builds its own database `crowdplatform_bench` (dropped and recreated; `--pg` names the server, default
   postgres://postgres@127.0.0.1:5432), migrates it and creates a live study through the real domain
   functions (user_create, organization_create, study_create, system_register, items_upload, study_launch;
   raters through rater_profile_update, rater_application_submit and rater_status_decide): 8 systems,
   2,000 prompts (56,000 item pairs), overlap 3, a budget far beyond the run, English required, and 32
   approved raters speaking English (plus one more rater for the in-process profile). Sessions are created
   server-side (SessionStore with the auth keys) with a csrftoken cookie and a matching X-CSRFToken header.
   The result is kept as a template database so that every server configuration starts from the same state.
   All content is generated from `--seed`; the server's own draws (SystemRandom) are not seedable.
2. For each server configuration (`--configs`, default sync:2,sync:4,sync:8,gthread:2x4,gthread:2x8):
   restores the database from the template, starts gunicorn against it with production settings (DEBUG off, a
   SECRET_KEY, SECURE_SSL_REDIRECT/secure cookies/HSTS off because the benchmark speaks plain HTTP on
   127.0.0.1, persistent connections DATABASE_CONN_MAX_AGE=600, CACHE_URL on Redis when it answers on
   127.0.0.1:6379, else the per-process memory cache) and API_THROTTLE_ACTOR raised to `--throttle` so the
   throttle still runs on every request but never refuses (a per-second window also keeps DRF's history list
   short), then runs the raters for `--warmup` + `--duration` seconds: each rater loops POST
   /api/v1/tasks/next/ then POST /api/v1/tasks/{id}/vote/ with a random choice over a persistent http.client
   connection, one thread per rater spread over `--client-processes` processes.
3. Measures cycles/s, p50/p95/p99/max of the cycle and of each endpoint (measured window only), status
   counts, errors, and the CPU every process used in the window (from /proc): gunicorn, the PostgreSQL
   backends of the benchmark database, the load generator, Redis, interrupts, and other work on the machine.
   The machine is shared: a window where other processes used more than `--max-other-load` of it is measured
   again (`--retries`), the quietest attempt is kept, and the CPU cost per cycle gives what a dedicated
   machine would do ("CPU-bound estimate").
4. Verifies the database after each run: no item pair with more non-expired tasks than the overlap, no rater
   twice on an item pair, at most one open lease per rater, every vote's task belongs to its rater (and its
   study, item and systems match), every submitted task has its vote, the client's 201 count equals the votes
   stored, and every counter equals its recount (ItemPair.votes, PairStat.votes/low_wins/high_wins,
   System.votes_count, Study.votes_count). Any failed check makes the script exit 1.
5. What-ifs (`--what-if`, default prepared,app,prepared+app), run with the best configuration (or
   `--what-if-configs`), none of which edits the app: `prepared` adds ?server_side_binding=true&
   prepare_threshold=5 to DATABASE_URL (server-side parameters, prepared statements); `app` loads
   benchmarks/task_cycle_patches.py into the workers through benchmarks/task_cycle_gunicorn.py: in-memory
   versions of proposed app changes, so their gain is measured before anyone makes them.
6. Where the time goes: an in-process measurement through Django's real WSGI handler (no HTTP) counts and
   times every SQL statement per endpoint, the connection health check, Python time and CPU, two floors
   (GET /healthz, GET /api/v1/me/) and a cProfile CPU split by package, for the app as it is against
   `--profile-what-if`, in alternating chunks so that drifts in the machine's speed fall on both alike;
   EXPLAIN ANALYZE of the slot-locking query as the app sends it; and, if py-spy is installed (optional:
   `pip install py-spy`), wall-clock samples of the gunicorn workers handling requests under load with the
   best run's setup (not counted in the figures).
7. Writes benchmarks/results/task_cycle-<UTC timestamp>.json and appends a section to benchmarks/RESULTS.md
   (`--no-record` skips the Markdown).

Options worth knowing: --workers N [--worker-class gthread --threads 4] runs one configuration; --what-if ''
runs none; --reuse-template skips the build when a kept template matches the parameters (needs --keep-db
the first time); --profile-cycles 0 and --py-spy-seconds 0 skip the profiles. Ctrl-C stops the server, the
clients and py-spy. Exit status: 0 all checks passed, 1 a check failed, 2 the run could not be set up.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import hashlib
import http.client
import io
import json
import math
import multiprocessing
import os
import platform
import pstats
import queue
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "benchmarks" / "results"
RESULTS_MD = REPO / "benchmarks" / "RESULTS.md"
BENCH_DB = "crowdplatform_bench"
TEMPLATE_DB = "crowdplatform_bench_template"
SECRET_KEY = "benchmark-only-secret-key-" + "k" * 40
PASSWORD = "benchmark-password-1"  # noqa: S105 (never used to log in: sessions are made server-side)
NEXT_PATH = "/api/v1/tasks/next/"
VOTE_PATH = "/api/v1/tasks/{}/vote/"
CHOICES = ("a", "b", "tie", "both_bad")
DEFAULT_CONFIGS = "sync:2,sync:4,sync:8,gthread:2x4,gthread:2x8"
TARGET_CYCLES_PER_SECOND = 300
TARGET_P99_MS = 100
OTHER_LOAD_WARNING = 0.05  # share of the machine used by processes that are not part of the benchmark
UNATTRIBUTED_JITTER = 0.03  # /proc/stat against per-process ticks: their difference when the box is quiet
CLK_TCK = os.sysconf("SC_CLK_TCK")
APP_CODE = ("crowdplatform", "evaluations", "payments")  # what the server runs: watched for edits during a run
BUILD_VERSION = 1  # bump when the generated study changes, so --reuse-template rebuilds

_children: list[subprocess.Popen[bytes]] = []


# --- Small helpers ---------------------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of `values` (any order); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_summary(seconds: list[float]) -> dict[str, float | int | None]:
    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 2)

    return {
        "count": len(seconds),
        "mean_ms": ms(sum(seconds) / len(seconds)) if seconds else None,
        "p50_ms": ms(percentile(seconds, 50)),
        "p95_ms": ms(percentile(seconds, 95)),
        "p99_ms": ms(percentile(seconds, 99)),
        "max_ms": ms(max(seconds)) if seconds else None,
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_answers(url: str) -> bool:
    match = re.match(r"redis://([^:/]+):(\d+)", url)
    if not match:
        return False
    try:
        with socket.create_connection((match.group(1), int(match.group(2))), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def app_version() -> dict[str, Any]:
    """The commit the app is at, whether its code differs from it, and a digest of that code."""

    def git(*command: str) -> str:
        result = subprocess.run(["git", *command], cwd=REPO, capture_output=True, text=True, check=False)  # noqa: S603, S607
        return result.stdout.strip()

    digest = hashlib.sha256()
    for folder in APP_CODE:
        for path in sorted((REPO / folder).rglob("*.py")):
            digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    changed = git("status", "--porcelain", "--", *APP_CODE)
    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "uncommitted_changes": bool(changed),
        "digest": digest.hexdigest()[:16],
    }


# --- CPU accounting from /proc ---------------------------------------------------------------------------


def processes() -> dict[int, tuple[str, int, float]]:
    """Every process: pid -> (command name, parent pid, utime + stime in seconds, all threads)."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        table[int(entry.name)] = (name, int(fields[1]), (int(fields[11]) + int(fields[12])) / CLK_TCK)
    return table


def machine_cpu() -> dict[str, float]:
    """CPU seconds of the whole machine since boot (all cores): busy, total, and interrupts."""
    values = [int(v) / CLK_TCK for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    idle, iowait, irq, softirq, steal = values[3:8]
    total = sum(values)
    return {"busy": total - idle - iowait, "total": total, "interrupts": irq + softirq, "steal": steal}


@dataclass
class CpuSnapshot:
    at: float
    processes: dict[int, tuple[str, int, float]]
    postgres_bench: set[int]
    postgres_background: set[int]
    machine: dict[str, float]


def cpu_snapshot(admin: Any) -> CpuSnapshot:
    rows = admin.execute("SELECT pid, datname FROM pg_stat_activity").fetchall()
    return CpuSnapshot(
        time.monotonic(),
        processes(),
        {pid for pid, datname in rows if datname == BENCH_DB},
        {pid for pid, datname in rows if datname is None},
        machine_cpu(),
    )


def cpu_split(before: CpuSnapshot, after: CpuSnapshot, *, server: int, clients: set[int]) -> dict[str, float]:
    """CPU seconds used between two snapshots, by who used it."""
    split: Counter[str] = Counter()
    others: Counter[str] = Counter()
    bench = before.postgres_bench | after.postgres_bench
    for pid, (name, ppid, cpu) in after.processes.items():
        used = cpu - before.processes.get(pid, (name, ppid, 0.0))[2]
        if used <= 0:
            continue
        if pid == server or ppid == server:
            split["server (gunicorn)"] += used
        elif pid in clients:
            split["load generator"] += used
        elif pid in bench:
            split["PostgreSQL backends (benchmark db)"] += used
        elif pid in after.postgres_background:
            split["PostgreSQL background (WAL writer, checkpointer...)"] += used
        elif name.startswith("postgres"):
            split["other load: PostgreSQL backends of other databases"] += used
            others["postgres (other databases)"] += used
        elif name.startswith("redis"):
            split["Redis (cache: throttle)"] += used
        elif pid == os.getpid():
            split["benchmark orchestrator"] += used
        elif ppid == 2 or pid == 2:
            split["kernel threads"] += used
        else:
            split["other load: other processes"] += used
            others[name] += used
    machine = {key: after.machine[key] - before.machine[key] for key in after.machine}
    split["interrupts (irq/softirq: loopback networking)"] = machine["interrupts"]
    unattributed = machine["busy"] - sum(split.values())
    # Processes that started and ended inside the window (another session's test run, a browser...) show
    # only in the machine's total: beyond the accounting jitter (about 2% either way), they are other load.
    if unattributed > UNATTRIBUTED_JITTER * machine["total"]:
        split["other load: short-lived processes"] = unattributed
    result = {key: round(value, 3) for key, value in split.items()}
    result["_machine_busy"] = round(machine["busy"], 3)
    result["_machine_total"] = round(machine["total"], 3)
    result["_unattributed"] = round(unattributed, 3)
    result["_other_processes"] = {name: round(value, 3) for name, value in others.most_common(5)}  # type: ignore[assignment]
    return result


# --- Database administration -----------------------------------------------------------------------------


def admin_connection(pg: str) -> Any:
    import psycopg

    return psycopg.connect(f"{pg}/postgres", autocommit=True)


def database_comment(admin: Any, name: str) -> str | None:
    row = admin.execute(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", (name,)
    ).fetchone()
    return None if row is None else (row[0] or "")


def recreate_database(admin: Any, name: str, *, template: str | None = None) -> None:
    from django.db import connections

    connections.close_all()
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))


def restore_database(args: argparse.Namespace, admin: Any, variant: Variant | None = None) -> None:
    """The benchmark database as the template has it, plus the variant's SQL."""
    import psycopg

    recreate_database(admin, BENCH_DB, template=TEMPLATE_DB)
    if variant and variant.sql:
        with psycopg.connect(f"{args.pg}/{BENCH_DB}", autocommit=True) as conn:
            for statement in variant.sql:
                conn.execute(statement)


@contextlib.contextmanager
def variant_in_process(variant: Variant) -> Iterator[None]:
    """This process's Django with the variant's DATABASE_URL options and app patches (the database is ready)."""
    import dj_database_url
    from django.db import connections

    connection = connections["default"]
    saved = dict(connection.settings_dict["OPTIONS"])
    connection.close()
    if variant.url_options:
        options = dj_database_url.parse(f"postgres://localhost/db?{variant.url_options}")["OPTIONS"]
        connection.settings_dict["OPTIONS"].update(options)
    undo: Callable[[], None] = lambda: None  # noqa: E731
    if variant.patches:
        sys.path.insert(0, str(REPO / "benchmarks"))
        import task_cycle_patches

        undo = task_cycle_patches.apply(variant.patches)
    try:
        yield
    finally:
        undo()
        connection.close()
        connection.settings_dict["OPTIONS"].clear()
        connection.settings_dict["OPTIONS"].update(saved)


def drop_database(admin: Any, name: str) -> None:
    from django.db import connections

    connections.close_all()
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- Environment shared by this process and the server --------------------------------------------------


PREPARED_OPTIONS = "server_side_binding=true&prepare_threshold=5"
APP_PATCHES = ("profile_join",)  # benchmarks/task_cycle_patches.py


@dataclass(frozen=True)
class Variant:
    """A what-if: the same app with other DATABASE_URL options, extra SQL on the restored database, or
    in-memory patches standing for proposed app changes."""

    name: str
    description: str
    sql: tuple[str, ...] = ()
    url_options: str = ""
    patches: tuple[str, ...] = ()
    undo_sql: tuple[str, ...] = ()  # what takes `sql` back out (the in-process A/B profile toggles it)


VARIANTS = {
    "prepared": Variant(
        "prepared",
        f"DATABASE_URL ...?{PREPARED_OPTIONS}: server-side parameters, statements prepared after 5 uses",
        url_options=PREPARED_OPTIONS,
    ),
    "app": Variant(
        "app",
        "the user loaded with its rater profile in one query (benchmarks/task_cycle_patches.py: profile_join)",
        patches=APP_PATCHES,
    ),
    "prepared+app": Variant(
        "prepared+app",
        "both of the above",
        url_options=PREPARED_OPTIONS,
        patches=APP_PATCHES,
    ),
}


def app_environment(args: argparse.Namespace, variant: Variant | None = None) -> dict[str, str]:
    options = f"?{variant.url_options}" if variant and variant.url_options else ""
    env = {
        "DJANGO_SETTINGS_MODULE": "crowdplatform.settings",
        "DATABASE_URL": f"{args.pg}/{BENCH_DB}{options}",
        "DATABASE_CONN_MAX_AGE": "600",
        "DEBUG": "0",
        "SECRET_KEY": SECRET_KEY,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        # Plain HTTP on 127.0.0.1: the transport-security redirects and secure-only cookies are off.
        "SECURE_SSL_REDIRECT": "0",
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
        "SECURE_HSTS_SECONDS": "0",
        "API_THROTTLE_ACTOR": args.throttle,
        "CELERY_BROKER_URL": "",
        "CACHE_URL": args.cache_url,
        "LOG_LEVEL": "WARNING",
        "PYTHONDONTWRITEBYTECODE": "1",
        "TASK_CYCLE_PATCHES": ",".join(variant.patches) if variant else "",
    }
    return env


def django_setup(args: argparse.Namespace) -> None:
    os.environ.update(app_environment(args))
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    import django

    django.setup()


# --- Building the study --------------------------------------------------------------------------------

_WORDS_TEXT = (
    "the model answers question carefully because data shows that users prefer short clear steps while "
    "explanations matter when code fails tests should pass before release and results depend on inputs "
    "this function returns value error handling retries network request cache memory latency throughput "
    "database index query transaction lock version rollback deploy config review security token"
)
WORDS = tuple(_WORDS_TEXT.split())
TOPICS = ("Python", "SQL", "statistics", "chemistry", "history", "law", "cooking", "travel", "finance", "biology")


def _text(rng: random.Random, chars: int) -> str:
    """Seeded markdown-ish prose of about `chars` characters: paragraphs, sometimes a list or code."""
    parts: list[str] = []
    size = 0
    while size < chars:
        kind = rng.random()
        if kind < 0.15:
            block = "\n".join(f"- {' '.join(rng.choices(WORDS, k=6))}" for _ in range(3))
        elif kind < 0.25:
            block = "```python\n" + f"def f(x):\n    return x * {rng.randint(2, 9)}\n" + "```"
        else:
            sentence_count = rng.randint(2, 4)
            block = " ".join(
                " ".join(rng.choices(WORDS, k=rng.randint(8, 14))).capitalize() + "." for _ in range(sentence_count)
            )
            if rng.random() < 0.3:
                block = block.replace(" data ", " **data** ", 1)
        parts.append(block)
        size += len(block) + 2
    return "\n\n".join(parts)


def items_jsonl(rng: random.Random, *, items: int, systems: list[str], response_chars: int) -> bytes:
    lines = []
    for n in range(items):
        topic = rng.choice(TOPICS)
        line = {
            "prompt_id": f"bench-{n:05d}",
            "prompt": f"A question about {topic} (#{n}): " + " ".join(rng.choices(WORDS, k=rng.randint(15, 40))) + "?",
            "language": "en",
            "category": topic.lower(),
            "responses": {name: _text(rng, response_chars) for name in systems},
        }
        lines.append(json.dumps(line).encode())
    return b"\n".join(lines) + b"\n"


def build_parameters(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "version": BUILD_VERSION,
        "raters": args.raters,
        "systems": args.systems,
        "items": args.items,
        "overlap": args.overlap,
        "response_chars": args.response_chars,
        "sampling": args.sampling,
        "seed": args.seed,
    }


def build_study(args: argparse.Namespace) -> dict[str, Any]:
    """The live study, its raters and their sessions, built through the domain functions."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore
    from django.middleware.csrf import CSRF_ALLOWED_CHARS
    from django.test.utils import override_settings
    from django.utils.crypto import get_random_string

    from crowdplatform.accounts.models import AccountType
    from crowdplatform.accounts.services import organization_create, user_create
    from crowdplatform.raters import services as rater_services
    from evaluations import services
    from evaluations.models import ItemPair

    rng = random.Random(args.seed)
    # Users are made with a fast hasher: nobody logs in with a password here, and PBKDF2 would cost ~30 s.
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        owner = user_create(
            email="bench-client@example.org",
            password=PASSWORD,
            account_type=AccountType.CLIENT,
            actor=None,
            email_verified=True,
        )
        staff = user_create(
            email="bench-staff@example.org",
            password=PASSWORD,
            account_type=AccountType.CLIENT,
            actor=None,
            is_staff=True,
            email_verified=True,
        )
        organization = organization_create(name="Benchmark Lab", owner=owner, actor=owner)
        study = services.study_create(
            organization=organization,
            actor=owner,
            data=services.StudyInput(
                name="Task-cycle benchmark",
                question="Which response answers the question better?",
                criteria=[
                    {"name": "helpfulness", "definition": "Answers what was asked."},
                    {"name": "accuracy", "definition": "Says nothing false."},
                ],
                pay_per_task_cents=25,
                est_seconds_per_task=60,
                votes_per_pair=args.overlap,
                sampling=args.sampling,
                requirements={"languages": ["en"]},
                budget_cents=10**10,  # far beyond every slot: the budget never limits the run
            ),
        )
        names = [f"model-{chr(ord('a') + i)}" for i in range(args.systems)]
        for name in names:
            services.system_register(study=study, actor=owner, name=name, provider="Benchmark")
        log(f"uploading {args.items} items x {args.systems} responses")
        uploaded = services.items_upload(
            study=study,
            actor=owner,
            data=items_jsonl(rng, items=args.items, systems=names, response_chars=args.response_chars),
            content_type="application/jsonl",
            filename="bench.jsonl",
        )
        study = services.study_launch(study=study, actor=owner)
        log(f"study {study.pk} live: {uploaded.created} items, {uploaded.item_pairs} item pairs")

        profile_input = rater_services.ProfileInput(
            display_name="",
            country="DE",
            timezone="Europe/Berlin",
            years_of_experience=3,
            credentials="Benchmark rater.",
            languages=(("en", "fluent"),),
            domain_slugs=("general",),
        )
        raters = []
        for index in range(args.raters + 1):  # the last one is the in-process profile's rater
            user = user_create(
                email=f"bench-rater{index:03d}@example.org",
                password=PASSWORD,
                account_type=AccountType.RATER,
                actor=None,
                email_verified=True,
            )
            profile = user.rater_profile
            data = rater_services.ProfileInput(**{**profile_input.__dict__, "display_name": f"Rater {index}"})
            rater_services.rater_profile_update(profile=profile, data=data, actor=user)
            rater_services.rater_application_submit(
                profile=profile, consent_terms=True, consent_pay_policy=True, actor=user
            )
            rater_services.rater_status_decide(profile=profile, decision="approve", actor=staff)
            session = SessionStore()
            session[SESSION_KEY] = str(user.pk)
            session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
            session[HASH_SESSION_KEY] = user.get_session_auth_hash()
            session.create()
            raters.append(
                {
                    "index": index,
                    "user_id": user.pk,
                    "profile_id": profile.pk,
                    "session_key": session.session_key,
                    "csrf": get_random_string(32, CSRF_ALLOWED_CHARS),
                }
            )
    return {
        "study_id": study.pk,
        "item_pairs": ItemPair.objects.filter(study=study).count(),
        "raters": raters[: args.raters],
        "profiler": raters[args.raters],
        "parameters": build_parameters(args),
    }


def prepare_template(args: argparse.Namespace, admin: Any) -> dict[str, Any]:
    """Build (or reuse) the template database; returns the study's metadata."""
    from django.core.management import call_command

    wanted = build_parameters(args)
    if args.reuse_template:
        comment = database_comment(admin, TEMPLATE_DB)
        if comment:
            meta = json.loads(comment)
            if meta.get("parameters") == wanted:
                log(f"reusing template database {TEMPLATE_DB}")
                return meta
            log("the kept template was built with other parameters: rebuilding")
    started = time.monotonic()
    drop_database(admin, TEMPLATE_DB)
    recreate_database(admin, BENCH_DB)
    log(f"migrating {BENCH_DB}")
    call_command("migrate", verbosity=0, interactive=False)
    meta = build_study(args)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    drop_database(admin, TEMPLATE_DB)
    recreate_database(admin, TEMPLATE_DB, template=BENCH_DB)
    comment = json.dumps(meta).replace("'", "''")
    admin.execute(f"COMMENT ON DATABASE \"{TEMPLATE_DB}\" IS '{comment}'")
    log(f"template {TEMPLATE_DB} built in {time.monotonic() - started:.0f} s")
    return meta


# --- The server ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerConfig:
    worker_class: str
    workers: int
    threads: int

    @property
    def name(self) -> str:
        if self.worker_class == "gthread":
            return f"gthread {self.workers}x{self.threads}"
        return f"{self.worker_class} {self.workers}"

    @classmethod
    def parse(cls, spec: str) -> ServerConfig:
        """`sync:4`, `gthread:2x8` (workers x threads)."""
        kind, _, size = spec.strip().partition(":")
        workers, _, threads = size.partition("x")
        if kind not in ("sync", "gthread") or not workers.isdigit() or (threads and not threads.isdigit()):
            raise argparse.ArgumentTypeError(f"bad server configuration {spec!r}: use sync:N or gthread:NxT")
        return cls(kind, int(workers), int(threads or (1 if kind == "sync" else 4)))


class Server:
    """gunicorn in its own process group, serving crowdplatform.wsgi against the benchmark database."""

    def __init__(
        self, config: ServerConfig, args: argparse.Namespace, port: int, variant: Variant | None = None
    ) -> None:
        self.config = config
        self.port = port
        self.variant = variant
        self.env = {**os.environ, **app_environment(args, variant)}
        self.log_file = tempfile.NamedTemporaryFile(prefix="task_cycle-server-", suffix=".log", delete=False)  # noqa: SIM115
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        return [
            str(gunicorn_path()),
            "crowdplatform.wsgi:application",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(self.config.workers),
            "--worker-class",
            self.config.worker_class,
            "--threads",
            str(self.config.threads),
            "--backlog",
            "2048",
            "--keep-alive",
            "30",
            "--timeout",
            "60",
            "--log-level",
            "warning",
            "--chdir",
            str(REPO),
            *(["--config", str(REPO / "benchmarks" / "task_cycle_gunicorn.py")] if self.variant else []),
        ]

    def start(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603 (our own gunicorn, fixed arguments)
            self.command(), env=self.env, stdout=self.log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
        _children.append(self.process)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited at start:\n{self.log_tail()}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/healthz")
                response = conn.getresponse()
                response.read()
                conn.close()
                if response.status == 200:
                    # Every worker imports the app on its own: give them all time to boot.
                    time.sleep(1.0 + 0.25 * self.config.workers)
                    return
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer /healthz within 60 s:\n{self.log_tail()}")

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("the server is not started")
        return self.process.pid

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        self.log_file.flush()
        text = Path(self.log_file.name).read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])


def gunicorn_path() -> Path:
    candidate = Path(sys.executable).parent / "gunicorn"
    if candidate.exists():
        return candidate
    found = shutil.which("gunicorn")
    if not found:
        raise SystemExit("gunicorn is not installed: .venv/bin/pip install -r requirements.txt")
    return Path(found)


def py_spy_path() -> Path | None:
    candidate = Path(sys.executable).parent / "py-spy"
    if candidate.exists():
        return candidate
    found = shutil.which("py-spy")
    return Path(found) if found else None


# --- The load generator (runs in spawned processes; stdlib only) ------------------------------------------


def _rater_loop(
    rater: dict[str, Any],
    port: int,
    start_at: float,
    end_at: float,
    seed: int,
    out: dict[str, list[Any]],
) -> None:
    """One rater: next task, then a vote on it, until `end_at`. Samples are (completed_at, seconds, status)."""
    rng = random.Random(seed * 1000 + rater["index"])
    headers = {
        "Cookie": f"sessionid={rater['session_key']}; csrftoken={rater['csrf']}",
        "X-CSRFToken": rater["csrf"],
        "Content-Type": "application/json",
        "Accept": "application/json",
    }
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def post(path: str, body: bytes) -> tuple[int | str, bytes]:
        nonlocal conn
        try:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException) as error:
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            return f"exception:{type(error).__name__}", b""

    time.sleep(max(0.0, start_at - time.monotonic()))
    while time.monotonic() < end_at:
        t0 = time.monotonic()
        status, body = post(NEXT_PATH, b"{}")
        t1 = time.monotonic()
        out["next"].append((t1, t1 - t0, status))
        if status != 200:
            if status != 204:
                out["errors"].append((t1, "next", status, body[:200].decode(errors="replace")))
            time.sleep(0.02)
            continue
        task_id = json.loads(body)["id"]
        vote = json.dumps({"choice": rng.choice(CHOICES)}).encode()
        status, body = post(VOTE_PATH.format(task_id), vote)
        t2 = time.monotonic()
        out["vote"].append((t2, t2 - t1, status))
        if status == 201:
            out["cycle"].append((t2, t2 - t0))
        else:
            out["errors"].append((t2, "vote", status, body[:200].decode(errors="replace")))
    conn.close()


def client_process(
    raters: list[dict[str, Any]], port: int, start_at: float, end_at: float, seed: int, results: Any
) -> None:
    """A share of the raters, one thread each; reports their samples."""
    out: dict[str, list[Any]] = {"next": [], "vote": [], "cycle": [], "errors": []}
    try:
        threads = [
            threading.Thread(target=_rater_loop, args=(rater, port, start_at, end_at, seed, out), daemon=True)
            for rater in raters
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        results.put({"samples": out})
    except KeyboardInterrupt:
        pass


# --- One measured run -------------------------------------------------------------------------------------


def run_load(
    args: argparse.Namespace, meta: dict[str, Any], server: Server, admin: Any, *, warmup: float, duration: float
) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    processes = max(1, min(args.client_processes, len(meta["raters"])))
    shares = [meta["raters"][i::processes] for i in range(processes)]
    start_at = time.monotonic() + 2.0 + 0.3 * processes  # time for the spawned interpreters to start
    window = (start_at + warmup, start_at + warmup + duration)
    workers = [
        context.Process(
            target=client_process,
            args=(share, server.port, start_at, window[1], args.seed, results),
            daemon=True,
        )
        for share in shares
    ]
    for worker in workers:
        worker.start()
    time.sleep(max(0.0, window[0] - time.monotonic()))
    before = cpu_snapshot(admin)
    time.sleep(max(0.0, window[1] - time.monotonic()))
    after = cpu_snapshot(admin)
    split = cpu_split(before, after, server=server.pid, clients={worker.pid for worker in workers if worker.pid})
    collected = []
    for _ in workers:
        try:
            collected.append(results.get(timeout=120))
        except queue.Empty:
            raise RuntimeError("a client process did not report back") from None
    for worker in workers:
        worker.join(timeout=10)
    return summarize(collected, window, split)


def summarize(collected: list[dict[str, Any]], window: tuple[float, float], split: dict[str, Any]) -> dict[str, Any]:
    samples: dict[str, list[Any]] = defaultdict(list)
    for part in collected:
        for key, values in part["samples"].items():
            samples[key].extend(values)
    duration = window[1] - window[0]

    def inside(at: float) -> bool:
        return window[0] <= at <= window[1]

    cycles = [seconds for at, seconds in samples["cycle"] if inside(at)]
    next_ok = [seconds for at, seconds, status in samples["next"] if inside(at) and status == 200]
    next_all = [seconds for at, seconds, status in samples["next"] if inside(at)]
    votes = [seconds for at, seconds, status in samples["vote"] if inside(at)]
    statuses = {
        endpoint: dict(Counter(str(status) for at, _, status in samples[endpoint] if inside(at)))
        for endpoint in ("next", "vote")
    }
    errors = [entry for entry in samples["errors"] if inside(entry[0])]
    requests = len(next_all) + len(votes)
    cores = len(os.sched_getaffinity(0))
    done = max(len(cycles), 1)
    busy = split["_machine_busy"]

    def per_cycle(key: str) -> float:
        return round(split.get(key, 0.0) / done * 1000, 3)

    ours = sum(v for k, v in split.items() if not k.startswith(("_", "other load")))
    ours_per_cycle = ours / done * 1000

    return {
        "window_seconds": round(duration, 3),
        "cycles": len(cycles),
        "cycles_per_second": round(len(cycles) / duration, 1),
        "requests_per_second": round(requests / duration, 1),
        "cycle": latency_summary(cycles),
        "next": latency_summary(next_ok),
        "next_all_statuses": latency_summary(next_all),
        "vote": latency_summary(votes),
        "statuses": statuses,
        "errors": len(errors),
        "error_examples": [list(entry[1:]) for entry in errors[:5]],
        "votes_created_total": sum(1 for _, _, status in samples["vote"] if status == 201),
        "cpu": {
            "cores": cores,
            "machine_busy_share": round(busy / split["_machine_total"], 3) if split["_machine_total"] else None,
            "seconds": split,
            "server_ms_per_cycle": per_cycle("server (gunicorn)"),
            "postgres_ms_per_cycle": per_cycle("PostgreSQL backends (benchmark db)"),
            "client_ms_per_cycle": per_cycle("load generator"),
            "redis_ms_per_cycle": per_cycle("Redis (cache: throttle)"),
            "interrupts_ms_per_cycle": per_cycle("interrupts (irq/softirq: loopback networking)"),
            "machine_ms_per_cycle": round(busy / done * 1000, 3),
            "benchmark_ms_per_cycle": round(ours_per_cycle, 3),
            # What the same CPU cost per cycle allows when the benchmark has every core to itself.
            "dedicated_estimate_cycles_per_second": round(cores * 1000 / ours_per_cycle, 1) if len(cycles) else None,
            "client_share_of_machine": round(split.get("load generator", 0.0) / busy, 3) if busy else None,
            "other_load_share": round(
                sum(v for k, v in split.items() if k.startswith("other load")) / split["_machine_total"], 3
            )
            if split["_machine_total"]
            else None,
        },
    }


# --- Verification -----------------------------------------------------------------------------------------


def verify(study_id: int, *, votes_created: int | None) -> list[dict[str, Any]]:
    """The invariants after a run; each check is {name, ok, bad, detail}."""
    from django.db.models import Count, Q

    from evaluations.models import ItemPair, PairStat, Study, System, Task, TaskStatus, Vote

    study = Study.objects.get(pk=study_id)
    overlap = study.votes_per_pair
    checks: list[dict[str, Any]] = []

    def check(name: str, bad: int, detail: str = "") -> None:
        checks.append({"name": name, "ok": bad == 0, "bad": bad, "detail": detail})

    live = ~Q(tasks__status=TaskStatus.EXPIRED)
    overfull = (
        ItemPair.objects.filter(study=study, is_gold=False)
        .annotate(held=Count("tasks", filter=live))
        .filter(held__gt=overlap)
        .count()
    )
    check("item pairs with more non-expired tasks than the overlap", overfull, f"overlap {overlap}")
    twice = (
        Task.objects.filter(study=study)
        .exclude(status=TaskStatus.EXPIRED)
        .values("rater_id", "item_pair_id")
        .annotate(n=Count("pk"))
        .filter(n__gt=1)
        .count()
    )
    check("raters holding two slots of one item pair", twice)
    hoarding = (
        Task.objects.filter(status=TaskStatus.LEASED).values("rater_id").annotate(n=Count("pk")).filter(n__gt=1).count()
    )
    check("raters with more than one open lease", hoarding)
    unvoted = Task.objects.filter(study=study, status=TaskStatus.SUBMITTED, vote__isnull=True).count()
    check("submitted tasks without a vote", unvoted)

    rows = list(
        Vote.objects.filter(study=study).values_list(
            "rater_id",
            "task__rater_id",
            "study_id",
            "task__study_id",
            "item_id",
            "task__item_pair__item_id",
            "system_a_id",
            "task__response_a__system_id",
            "system_b_id",
            "task__response_b__system_id",
            "task__status",
            "task__item_pair_id",
            "task__item_pair__pair_stat_id",
            "choice",
            "is_gold",
        )
    )
    check("votes whose task belongs to another rater", sum(1 for r in rows if r[0] != r[1]))
    check(
        "votes whose study, item or systems differ from their task's",
        sum(1 for r in rows if r[2] != r[3] or r[4] != r[5] or r[6] != r[7] or r[8] != r[9]),
    )
    check("votes on a task that is not submitted", sum(1 for r in rows if r[10] != TaskStatus.SUBMITTED))
    if votes_created is not None:
        check(
            "votes stored equal the 201s the clients received",
            abs(len(rows) - votes_created),
            f"{len(rows)} stored, {votes_created} received",
        )

    pair_votes = Counter(r[11] for r in rows)
    stored = dict(ItemPair.objects.filter(study=study, votes__gt=0).values_list("pk", "votes"))
    keys = set(stored) | set(pair_votes)
    check(
        "ItemPair.votes different from the recount",
        sum(1 for key in keys if stored.get(key, 0) != pair_votes.get(key, 0)),
    )
    stat_counts: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    system_counts: Counter[int] = Counter()
    for r in rows:
        if r[14]:
            continue
        system_a, system_b, choice = r[6], r[8], r[13]
        entry = stat_counts[r[12]]
        entry[0] += 1
        winner = {"a": system_a, "b": system_b}.get(choice)
        if winner is not None:
            entry[1 if winner == min(system_a, system_b) else 2] += 1
        system_counts[system_a] += 1
        system_counts[system_b] += 1
    stats = list(PairStat.objects.filter(study=study).values_list("pk", "votes", "low_wins", "high_wins"))
    check(
        "PairStat votes/low_wins/high_wins different from the recount",
        sum(1 for pk, *counts in stats if counts != stat_counts.get(pk, [0, 0, 0])),
    )
    systems = list(System.objects.filter(study=study).values_list("pk", "votes_count"))
    check(
        "System.votes_count different from the recount",
        sum(1 for pk, count in systems if count != system_counts.get(pk, 0)),
    )
    check(
        "Study.votes_count different from the recount",
        int(study.votes_count != len(rows)),
        f"{study.votes_count} counted, {len(rows)} votes",
    )
    return checks


# --- Where the time goes: in-process measurement through the WSGI handler ------------------------------


def _collapse_subqueries(sql: str) -> str:
    """Every parenthesised sub-SELECT becomes "(SELECT …)"."""
    out: list[str] = []
    i = 0
    while i < len(sql):
        if sql.startswith("(SELECT", i):
            depth = 0
            for j in range(i, len(sql)):
                depth += {"(": 1, ")": -1}.get(sql[j], 0)
                if depth == 0:
                    break
            out.append("(SELECT …)")
            i = j + 1
        else:
            out.append(sql[i])
            i += 1
    return "".join(out)


def _sql_label(sql: str) -> str:
    """A statement, short: the select list and sub-SELECTs elided, table prefixes dropped."""
    label = _collapse_subqueries(sql)
    if label.startswith("SELECT ") and " FROM " in label:
        label = "SELECT … FROM " + label.split(" FROM ", 1)[1]  # noqa: S608 (a label for the report)
    label = re.sub(r'"[a-z_0-9]+"\."([a-z_0-9]+)"', r"\1", label)
    label = re.sub(r"\s+", " ", label).replace('"', "")
    return label[:160]


@dataclass
class RequestRecord:
    endpoint: str
    status: int
    wall: float
    cpu: float
    queries: list[tuple[str, float]]
    health_checks: float


class InProcess:
    """Requests straight into Django's WSGI handler (what gunicorn calls), timing SQL and health checks."""

    def __init__(self, rater: dict[str, Any]) -> None:
        from django.core.handlers.wsgi import WSGIHandler

        self.app = WSGIHandler()
        self.rater = rater
        self.queries: list[tuple[str, float]] = []
        self.health: list[float] = []

    def _timer(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.queries.append((sql, time.perf_counter() - started))

    @contextlib.contextmanager
    def timing(self) -> Iterator[None]:
        from django.db import connection

        original_is_usable = connection.is_usable

        def is_usable() -> bool:
            started = time.perf_counter()
            try:
                return original_is_usable()
            finally:
                self.health.append(time.perf_counter() - started)

        connection.is_usable = is_usable  # type: ignore[method-assign]
        try:
            with connection.execute_wrapper(self._timer):
                yield
        finally:
            connection.is_usable = original_is_usable  # type: ignore[method-assign]

    def request(self, endpoint: str, method: str, path: str, body: bytes = b"") -> tuple[RequestRecord, bytes]:
        self.queries.clear()
        self.health.clear()
        environ = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": "127.0.0.1:8000",
            "HTTP_COOKIE": f"sessionid={self.rater['session_key']}; csrftoken={self.rater['csrf']}",
            "HTTP_X_CSRFTOKEN": self.rater["csrf"],
            "HTTP_ACCEPT": "application/json",
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.url_scheme": "http",
            "wsgi.version": (1, 0),
            "wsgi.multithread": False,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        status: list[str] = []
        wall0, cpu0 = time.perf_counter(), time.thread_time()
        result = self.app(environ, lambda s, h, e=None: status.append(s))
        content = b"".join(result)
        result.close()  # request_finished, as gunicorn does after sending the body
        record = RequestRecord(
            endpoint,
            int(status[0].split()[0]),
            time.perf_counter() - wall0,
            time.thread_time() - cpu0,
            list(self.queries),
            sum(self.health),
        )
        return record, content


def wsgi_requests(meta: dict[str, Any], cycles: int) -> Iterator[RequestRecord]:
    """Cycles of next + vote for the profile rater, straight into Django's WSGI handler."""
    client = InProcess(meta["profiler"])
    rng = random.Random(12345)
    with client.timing():
        for _ in range(cycles):
            record, content = client.request("next", "POST", NEXT_PATH, b"{}")
            yield record
            if record.status != 200:
                continue
            body = json.dumps({"choice": rng.choice(CHOICES)}).encode()
            record, _ = client.request("vote", "POST", VOTE_PATH.format(json.loads(content)["id"]), body)
            yield record


FLOORS = (
    ("GET /healthz (Django middleware, no session, SELECT 1)", "/healthz"),
    ("GET /api/v1/me/ (session + user + DRF, no domain work)", "/api/v1/me/"),
)


def floor_requests(meta: dict[str, Any], count: int) -> Iterator[RequestRecord]:
    client = InProcess(meta["profiler"])
    with client.timing():
        for _ in range(count):
            for label, path in FLOORS:
                record, _ = client.request(label, "GET", path)
                yield record


CATEGORIES = (
    ("psycopg (driver: adapting parameters and rows, socket I/O)", ("/psycopg",)),
    ("Django ORM (query building, model instances)", ("/django/db/",)),
    ("DRF (views, serializers, parsers, throttling)", ("/rest_framework/",)),
    ("Django request/response (middleware, sessions, auth, urls, http)", ("/django/",)),
    ("cache client (redis)", ("/redis/",)),
    ("application (evaluations, crowdplatform, payments)", ("/evaluations/", "/crowdplatform/", "/payments/")),
    ("allauth", ("/allauth/",)),
)


def _category(filename: str, function: str) -> str:
    where = f"/{filename} {function}"
    for name, needles in CATEGORIES:
        if any(needle in where for needle in needles):
            return name
    return "stdlib and other (json, uuid, datetime, logging...)"


def _endpoint_summary(records: list[RequestRecord]) -> dict[str, Any]:
    count = len(records)
    sql = [sum(seconds for _, seconds in r.queries) for r in records]
    per_statement: dict[str, list[float]] = defaultdict(list)
    for r in records:
        for statement, seconds in r.queries:
            per_statement[_sql_label(statement)].append(seconds)
    top = sorted(per_statement.items(), key=lambda item: -sum(item[1]))
    python = [r.wall - s - r.health_checks for r, s in zip(records, sql, strict=True)]
    return {
        "requests": count,
        "wall_ms": round(sum(r.wall for r in records) / count * 1000, 3),
        "wall_p50_ms": round((percentile([r.wall for r in records], 50) or 0) * 1000, 3),
        "cpu_ms": round(sum(r.cpu for r in records) / count * 1000, 3),
        "queries": round(sum(len(r.queries) for r in records) / count, 2),
        "sql_ms": round(sum(sql) / count * 1000, 3),
        "health_check_ms": round(sum(r.health_checks for r in records) / count * 1000, 3),
        "python_ms": round(sum(python) / count * 1000, 3),
        "statements": [
            {
                "sql": label,
                "per_request": round(len(times) / count, 2),
                "mean_ms": round(sum(times) / len(times) * 1000, 3),
                "total_share": round(sum(times) / max(sum(sql), 1e-9), 3),
            }
            for label, times in top
        ],
    }


def _cprofile_shares(meta: dict[str, Any], cycles: int) -> dict[str, Any]:
    """cProfile CPU self time by package over `cycles` cycles; builtins are charged to their callers."""
    profiler = cProfile.Profile(time.thread_time)  # CPU time: waiting for PostgreSQL costs none
    profiler.enable()
    profiled = list(wsgi_requests(meta, cycles))
    profiler.disable()
    stats = pstats.Stats(profiler)
    by_category: Counter[str] = Counter()
    for (filename, _, function), (_, _, tottime, _, callers) in stats.stats.items():  # type: ignore[attr-defined]
        if filename != "~" or not callers:
            by_category[_category(filename, function)] += tottime
            continue
        # A builtin (isinstance, str.join, json's C encoder...): its time goes to whoever called it.
        weights = {caller: entry[2] for caller, entry in callers.items()}
        total_weight = sum(weights.values()) or 1.0
        for (caller_file, _, caller_function), weight in weights.items():
            by_category[_category(caller_file, caller_function)] += tottime * weight / total_weight
    total = sum(by_category.values())
    return {
        "requests": len(profiled),
        "note": "cProfile CPU self time by package; cProfile inflates Python time ~1.5-2x, shares count",
        "ms_per_request": round(total / max(len(profiled), 1) * 1000, 3),
        "shares": {name: round(seconds / total, 3) for name, seconds in by_category.most_common()},
    }


@contextlib.contextmanager
def arm_applied(variant: Variant | None) -> Iterator[None]:
    """This process's Django and the benchmark database as `variant` has them, for a while."""
    if variant is None:
        yield
        return
    from django.db import connection

    with connection.cursor() as cursor:
        for statement in variant.sql:
            cursor.execute(statement)
    try:
        with variant_in_process(variant):
            yield
    finally:
        with connection.cursor() as cursor:
            for statement in variant.undo_sql:
                cursor.execute(statement)


def in_process_profile(
    meta: dict[str, Any], cycles: int, args: argparse.Namespace, admin: Any, variant: Variant | None
) -> dict[str, Any]:
    """The app as it is against `variant`, measured in alternating chunks (A B B A ...) in this one process so
    that drifts in the machine's speed fall on both alike. Per arm and endpoint: wall, CPU, SQL statements and
    their time, two floors; then a cProfile split by package per arm."""
    arms: dict[str, Variant | None] = {"as is": None}
    if variant is not None:
        arms[variant.name] = variant
    for arm in arms.values():  # warm up: imports, URL resolver, connection, prepared statements
        with arm_applied(arm):
            list(wsgi_requests(meta, 10))
            list(floor_requests(meta, 10))
    rounds = max(1, args.profile_rounds)
    chunk = max(10, cycles // rounds)
    records: dict[str, list[RequestRecord]] = {name: [] for name in arms}
    before = cpu_snapshot(admin)
    for round_number in range(rounds):
        order = list(arms) if round_number % 2 == 0 else list(reversed(arms))
        for name in order:
            with arm_applied(arms[name]):
                records[name] += wsgi_requests(meta, chunk)
                records[name] += floor_requests(meta, chunk)
    split = cpu_split(before, cpu_snapshot(admin), server=-1, clients=set())
    other = sum(v for k, v in split.items() if k.startswith("other load")) / max(split["_machine_total"], 1e-9)
    result: dict[str, Any] = {"rounds": rounds, "cycles_per_arm": chunk * rounds, "other_load_share": round(other, 3)}
    for name, arm in arms.items():
        endpoints: dict[str, Any] = {}
        for endpoint in ("next", "vote", *(label for label, _ in FLOORS)):
            mine = [r for r in records[name] if r.endpoint == endpoint and r.status in (200, 201)]
            if mine:
                endpoints[endpoint] = _endpoint_summary(mine)
        with arm_applied(arm):
            shares = _cprofile_shares(meta, max(50, cycles // 3))
        result[name] = {
            "variant": name,
            "other_load_share": round(other, 3),
            "endpoints": endpoints,
            "cprofile": shares,
        }
    return result


def explain_slot_query(meta: dict[str, Any]) -> dict[str, Any]:
    """EXPLAIN ANALYZE of the slot-locking query exactly as task_next sends it (in a rolled-back transaction)."""
    from django.db import connection, transaction

    captured: list[tuple[str, Any]] = []

    def capture(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        if "SKIP LOCKED" in sql and "evaluations_itempair" in sql:
            captured.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(capture):
        list(wsgi_requests(meta, 3))
    if not captured:
        return {"error": "the slot query was not seen"}
    sql, params = captured[-1]
    timings = []
    plan: list[str] = []
    with transaction.atomic(), connection.cursor() as cursor:
        for _ in range(5):
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
            plan = [row[0] for row in cursor.fetchall()]
            found = re.search(r"Execution Time: ([\d.]+)", "\n".join(plan))
            timings.append(float(found.group(1)) if found else float("nan"))
        transaction.set_rollback(True)
    return {"sql": sql, "execution_ms": sorted(timings)[len(timings) // 2], "plan": plan}


# --- Where the time goes under load: py-spy ---------------------------------------------------------------

SPY_FUNCTIONS = {
    "task_next (assignment)": "task_next (",
    "  _lock_open_slot (slot query + lease count)": "_lock_open_slot (",
    "  _studies_open_to + eligibility": "_studies_open_to (",
    "  _task_create (INSERT)": "_task_create (",
    "task_view (re-fetch for output)": "task_view (",
    "vote_submit (assignment)": "vote_submit (",
    "  _counters_add (5 UPDATEs)": "_counters_add (",
    "DRF serializers (output + input)": "serializers.py",
    "DRF check_throttles": "check_throttles (",
    "SessionMiddleware (load session)": "_get_session (",
    "AuthenticationMiddleware (load user)": "get_user (",
    "rater_profile_of": "rater_profile_of (",
    "CSRF check": "enforce_csrf (",
    "gunicorn (HTTP parsing, socket I/O)": "/gunicorn/",
}


# Leaf frames where a worker sends a statement and waits for the answer. On a saturated machine a send
# often hands the CPU to the woken PostgreSQL backend, so the worker's wall time there is a wait too.
def _psycopg_round_trip(leaf: str) -> bool:
    function, _, where = leaf.partition(" (")
    return where.startswith("psycopg/") and any(word in function for word in ("wait", "send", "_exec_command"))


def py_spy_profile(
    args: argparse.Namespace,
    meta: dict[str, Any],
    config: ServerConfig,
    variant: Variant | None,
    admin: Any,
    spy: Path,
) -> dict[str, Any]:
    """On-CPU samples of every gunicorn process while the raters run (a separate, uncounted run)."""
    restore_database(args, admin, variant)
    server = Server(config, args, free_port(), variant)
    output = Path(tempfile.mkdtemp(prefix="task_cycle-spy-")) / "stacks.txt"
    try:
        server.start()
        spy_process: subprocess.Popen[bytes] | None = None

        def start_spy() -> None:
            nonlocal spy_process
            time.sleep(3.0 + 2.0 + 0.3 * args.client_processes)  # after the clients' warmup
            spy_process = subprocess.Popen(  # noqa: S603 (py-spy from the venv, fixed arguments)
                [
                    str(spy),
                    "record",
                    "--pid",
                    str(server.pid),
                    "--subprocesses",
                    "--rate",
                    "200",
                    "--duration",
                    str(int(args.py_spy_seconds)),
                    "--format",
                    "raw",
                    "--output",
                    str(output),
                    "--nonblocking",
                    "--idle",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            _children.append(spy_process)

        starter = threading.Thread(target=start_spy, daemon=True)
        starter.start()
        load = run_load(args, meta, server, admin, warmup=3.0, duration=args.py_spy_seconds + 2)
        starter.join()
        if spy_process is not None:
            spy_process.wait(timeout=60)
    finally:
        server.stop()
    if not output.exists():
        return {"error": "py-spy wrote nothing"}
    total = 0
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for line in output.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames = stack.split(";")
        if not count_text.isdigit() or not any("django/core/handlers/wsgi.py" in frame for frame in frames):
            continue  # a worker waiting for a request, or the master
        count = int(count_text)
        total += count
        leaf = frames[-1]
        leaves[re.sub(r":\d+\)$", ")", leaf)] += count
        if _psycopg_round_trip(leaf):
            self_time["PostgreSQL round trips (send, then wait: execution, locks, commit, a free CPU)"] += count
        elif "/redis/" in "/" + leaf[leaf.rfind("(") + 1 :]:
            self_time["Redis client and waiting for Redis (throttle)"] += count
        else:
            self_time[_category(leaf[leaf.rfind("(") + 1 :], leaf)] += count
        for label, needle in SPY_FUNCTIONS.items():
            if any(needle in frame for frame in frames):
                inclusive[label] += count
    shutil.rmtree(output.parent, ignore_errors=True)
    return {
        "config": config.name + (f" + {variant.name}" if variant else ""),
        "note": "wall-clock samples (py-spy --idle) of workers while they handle a request",
        "samples": total,
        "cycles_per_second_while_sampled": load["cycles_per_second"],
        "self_time_shares": {name: round(n / total, 3) for name, n in self_time.most_common()} if total else {},
        "inclusive_shares": {name: round(inclusive[name] / total, 3) for name in SPY_FUNCTIONS} if total else {},
        "top_leaves": {leaf: round(n / total, 3) for leaf, n in leaves.most_common(20)} if total else {},
    }


# --- Reporting ----------------------------------------------------------------------------------------


def machine_info(admin: Any) -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout  # noqa: S607
        model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if "Model name" in line), "")
    mem_kb = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    import django
    import gunicorn

    settings = {
        name: admin.execute(f"SHOW {name}").fetchone()[0]
        for name in ("server_version", "shared_buffers", "synchronous_commit", "max_connections")
    }
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "ram_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "django": django.get_version(),
        "gunicorn": gunicorn.__version__,
        "postgresql": settings.pop("server_version"),
        "postgresql_settings": settings,
    }


def print_run(config: str, run: dict[str, Any]) -> None:
    cycle, nxt, vote, cpu = run["cycle"], run["next"], run["vote"], run["cpu"]
    print(
        f"  {config:<14} {run['cycles_per_second']:>7.1f} cycles/s  "
        f"cycle p50/p95/p99 {cycle['p50_ms']}/{cycle['p95_ms']}/{cycle['p99_ms']} ms  "
        f"next p99 {nxt['p99_ms']} ms  vote p99 {vote['p99_ms']} ms  errors {run['errors']}"
    )
    print(
        f"  {'':<14} CPU per cycle: server {cpu['server_ms_per_cycle']} ms,"
        f" PostgreSQL {cpu['postgres_ms_per_cycle']} ms,"
        f" client {cpu['client_ms_per_cycle']} ms, Redis {cpu['redis_ms_per_cycle']} ms,"
        f" interrupts {cpu['interrupts_ms_per_cycle']} ms, all of the benchmark {cpu['benchmark_ms_per_cycle']} ms"
        f" (a dedicated {cpu['cores']}-core machine: ~{cpu['dedicated_estimate_cycles_per_second']} cycles/s);"
        f" machine busy {cpu['machine_busy_share']:.0%}, client share {cpu['client_share_of_machine']:.0%};"
        f" statuses {run['statuses']}"
    )
    seconds = run["cpu"]["seconds"]
    print(f"  {'':<14} CPU seconds in the window: {json.dumps(seconds)}")
    if (run["cpu"]["other_load_share"] or 0) > OTHER_LOAD_WARNING:
        print(
            f"  {'':<14} WARNING: other work used {run['cpu']['other_load_share']:.0%} of the machine during this "
            f"window ({', '.join(seconds['_other_processes'])}): these figures are pessimistic"
        )


def markdown_section(report: dict[str, Any]) -> str:
    m = report["machine"]
    best = report["best"]
    runs = report["runs"]
    lines = [
        "",
        f"## task_cycle.py: {report['parameters']['raters']} raters, next-task + vote over HTTP on PostgreSQL "
        f"({report['date'][:10]})",
        "",
        f"- Machine: {m['nproc']} cores ({m['cpu_model']}), {m['ram_gib']} GiB RAM, Linux {m['kernel']}; "
        f"PostgreSQL {m['postgresql']} (shared_buffers {m['postgresql_settings']['shared_buffers']}, "
        f"synchronous_commit {m['postgresql_settings']['synchronous_commit']}); Python {m['python']}, "
        f"Django {m['django']}, gunicorn {m['gunicorn']}.",
        f"- App: commit {report['app']['commit']}"
        + (" with uncommitted changes" if report["app"]["uncommitted_changes"] else "")
        + (
            " (**the code changed during the run: figures mix two versions**)"
            if report["app_changed_during_run"]
            else ""
        )
        + ".",
        f"- Command: `{report['command']}`",
        f"- Study: {report['parameters']['systems']} systems, {report['parameters']['items']} prompts "
        f"({report['item_pairs']} item pairs), overlap {report['parameters']['overlap']}, sampling "
        f"{report['parameters']['sampling']}, responses ~{report['parameters']['response_chars']} chars, seed "
        f"{report['parameters']['seed']}. Each configuration starts from the same template database; "
        f"{report['warmup']} s warmup, then {report['duration']} s measured.",
        f"- Server settings: DEBUG off, DATABASE_CONN_MAX_AGE=600, cache {report['cache']}, "
        f"API_THROTTLE_ACTOR={report['throttle']} (raised so it runs but never refuses), plain HTTP on 127.0.0.1. "
        f"Load generator: {report['client_processes']} processes x threads, persistent http.client connections.",
        "",
        "| server | cycles/s | cycle p50 | p95 | p99 | next p99 | vote p99 | errors | CPU ms/cycle "
        "server / PG / client / all | CPU-bound estimate, cycles/s | machine busy | other load |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for name, run in runs.items():
        c, cpu = run["cycle"], run["cpu"]
        lines.append(
            f"| {name} | {run['cycles_per_second']} | {c['p50_ms']} | {c['p95_ms']} | {c['p99_ms']} | "
            f"{run['next']['p99_ms']} | {run['vote']['p99_ms']} | {run['errors']} | "
            f"{cpu['server_ms_per_cycle']} / {cpu['postgres_ms_per_cycle']} / {cpu['client_ms_per_cycle']} / "
            f"{cpu['benchmark_ms_per_cycle']} | {cpu['dedicated_estimate_cycles_per_second']} | "
            f"{cpu['machine_busy_share']:.0%} | {cpu['other_load_share']:.0%} |"
        )
    lines += ["", verdict("Best, the app as it is", best, runs[best]).replace("NOT met", "**not met**")]
    if report["best_overall"] != best:
        overall = report["best_overall"]
        title = "Best what-if, measured without editing the app"
        lines += ["", verdict(title, overall, runs[overall]).replace("NOT met", "**not met**")]
    for name, description in report["what_if"].items():
        lines += [f"- what-if `{name}`: {description}"]
    lines += ["", little(report["parameters"]["raters"])]
    lines += [
        "",
        f"Checks after every run: **{'all passed' if report['checks_passed'] else 'FAILED'}** "
        "(no item pair over its overlap, no rater twice on an item pair, one open lease per rater at most, "
        "every vote's task is its rater's, 201s = votes stored, ItemPair/PairStat/System/Study counters = recount).",
    ]
    for key, title in (
        ("in_process", "the app as it is"),
        ("in_process_what_if", f"what-if {report.get('in_process_what_if', {}).get('variant')}"),
    ):
        profile = report.get(key)
        if not profile:
            continue
        lines += [
            "",
            f"In-process, {title}: one request at a time through Django's WSGI handler (no HTTP, no contention):",
            "",
            "| endpoint | wall ms | CPU ms | SQL statements | SQL ms | health check ms | Python ms |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for endpoint, e in profile["endpoints"].items():
            lines.append(
                f"| {endpoint} | {e['wall_ms']} | {e['cpu_ms']} | {e['queries']} | {e['sql_ms']} | "
                f"{e['health_check_ms']} | {e['python_ms']} |"
            )
        shares = ", ".join(f"{name} {share:.0%}" for name, share in profile["cprofile"]["shares"].items())
        lines += ["", f"cProfile CPU self time by package: {shares}."]
    explain = report.get("explain")
    if explain and "execution_ms" in explain:
        lines += ["", f"Slot query (`_lock_open_slot`) EXPLAIN ANALYZE, median of 5: {explain['execution_ms']} ms."]
    spy = report.get("py_spy")
    if spy and "samples" in spy:
        shares = ", ".join(f"{name.strip()} {share:.0%}" for name, share in spy["inclusive_shares"].items())
        lines += [
            "",
            f"py-spy (wall clock) on the gunicorn workers under load ({spy['config']}), share of request time: "
            f"{shares}. By leaf: "
            + ", ".join(f"{name} {share:.0%}" for name, share in spy["self_time_shares"].items())
            + ".",
        ]
    lines += ["", f"JSON: `{report['json']}`", ""]
    return "\n".join(lines)


# --- Main ---------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Next-task + vote cycles of concurrent raters through the real API on PostgreSQL.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--raters", type=int, default=32, help="concurrent raters")
    parser.add_argument("--duration", type=float, default=30, help="measured seconds per server configuration")
    parser.add_argument("--warmup", type=float, default=5, help="seconds of load before measuring")
    parser.add_argument("--configs", default=DEFAULT_CONFIGS, help="server configurations: sync:N, gthread:NxT")
    parser.add_argument("--workers", type=int, help="run only this many workers (with --worker-class, --threads)")
    parser.add_argument("--worker-class", choices=("sync", "gthread"), default="sync")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker for --worker-class gthread")
    parser.add_argument("--client-processes", type=int, default=4, help="load-generator processes")
    parser.add_argument("--systems", type=int, default=8)
    parser.add_argument("--items", type=int, default=2000, help="prompts; item pairs = items x systems choose 2")
    parser.add_argument("--overlap", type=int, default=3, help="votes per item pair")
    parser.add_argument("--response-chars", type=int, default=800, help="approximate length of each response")
    parser.add_argument("--sampling", choices=("uniform", "balanced", "active"), default="active")
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432", help="PostgreSQL server (no db)")
    parser.add_argument(
        "--cache-url",
        default="redis://127.0.0.1:6379/15",
        help="CACHE_URL for the server; 'none' (or Redis not answering) means the per-process memory cache",
    )
    parser.add_argument("--throttle", default="100000/second", help="API_THROTTLE_ACTOR for the run")
    parser.add_argument("--profile-cycles", type=int, default=300, help="in-process profile cycles per arm (0: skip)")
    parser.add_argument("--profile-rounds", type=int, default=6, help="alternating chunks per arm in that profile")
    parser.add_argument(
        "--profile-what-if",
        default="prepared+app",
        help="also profile in-process with this what-if applied ('' for none)",
    )
    parser.add_argument("--py-spy-seconds", type=float, default=15, help="py-spy sampling under load (0: skip)")
    parser.add_argument(
        "--what-if",
        default="prepared,app,prepared+app",
        help=f"extra runs of the best configuration with no code change: {', '.join(VARIANTS)} ('' for none)",
    )
    parser.add_argument("--what-if-configs", default="", help="run the what-ifs with these configurations instead")
    parser.add_argument(
        "--max-other-load",
        type=float,
        default=0.10,
        help="share of the machine other processes may use in a window before the run is measured again",
    )
    parser.add_argument("--retries", type=int, default=2, help="re-measurements of a run disturbed by other work")
    parser.add_argument("--reuse-template", action="store_true", help="reuse a kept template built alike")
    parser.add_argument("--keep-db", action="store_true", help="keep the benchmark databases afterwards")
    parser.add_argument("--no-record", action="store_true", help="do not append to benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    if args.workers:
        args.server_configs = [ServerConfig(args.worker_class, args.workers, args.threads)]
    else:
        args.server_configs = [ServerConfig.parse(spec) for spec in args.configs.split(",") if spec.strip()]
    try:
        args.what_if = [VARIANTS[name.strip()] for name in args.what_if.split(",") if name.strip()]
    except KeyError as error:
        parser.error(f"unknown what-if {error}: choose from {', '.join(VARIANTS)}")
    if args.profile_what_if and args.profile_what_if not in VARIANTS:
        parser.error(f"unknown --profile-what-if {args.profile_what_if!r}: choose from {', '.join(VARIANTS)}")
    args.profile_what_if = VARIANTS.get(args.profile_what_if) if args.profile_what_if else None
    args.what_if_configs = [ServerConfig.parse(spec) for spec in args.what_if_configs.split(",") if spec.strip()]
    if args.cache_url.lower() == "none" or not redis_answers(args.cache_url):
        args.cache_url = ""
    return args


def _stop_children() -> None:
    for child in _children:
        if child.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, signal.SIGTERM) if _own_group(child) else child.terminate()
    for child in _children:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=10)
        if child.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, signal.SIGKILL) if _own_group(child) else child.kill()
    for process in multiprocessing.active_children():
        process.terminate()


def _own_group(child: subprocess.Popen[bytes]) -> bool:
    try:
        return os.getpgid(child.pid) == child.pid
    except ProcessLookupError:
        return False


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C, even when started with SIGINT ignored
    command = "  ".join([".venv/bin/python benchmarks/task_cycle.py", *(argv if argv is not None else sys.argv[1:])])
    command = command.replace("  ", " ").strip()
    try:
        admin = admin_connection(args.pg)
    except Exception as error:
        print(f"PostgreSQL is not reachable at {args.pg}: {error}", file=sys.stderr)
        return 2
    django_setup(args)
    from django.db import connections

    report: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        "parameters": build_parameters(args),
        "duration": args.duration,
        "warmup": args.warmup,
        "client_processes": args.client_processes,
        "cache": f"Redis ({args.cache_url})" if args.cache_url else "per-process memory (no Redis)",
        "throttle": args.throttle,
        "machine": machine_info(admin),
        "app": app_version(),
        "runs": {},
        "checks": {},
        "what_if": {},
    }
    print(
        f"Task-cycle benchmark: {args.raters} raters, {args.duration:.0f} s per configuration after "
        f"{args.warmup:.0f} s warmup, configurations {', '.join(c.name for c in args.server_configs)}.\n"
        f"Server: gunicorn, DEBUG off, DATABASE_CONN_MAX_AGE=600, cache {report['cache']}; "
        f"API_THROTTLE_ACTOR raised to {args.throttle} so the per-actor throttle runs but never refuses.",
        flush=True,
    )
    failed = False
    try:
        meta = prepare_template(args, admin)
        report["item_pairs"] = meta["item_pairs"]

        def measure(config: ServerConfig, variant: Variant | None) -> None:
            nonlocal failed
            name = config.name + (f" + {variant.name}" if variant else "")
            attempts = []
            for attempt in range(args.retries + 1):
                log(
                    f"{name}: restoring the database, starting gunicorn"
                    + (f" (attempt {attempt + 1})" if attempt else "")
                )
                restore_database(args, admin, variant)
                server = Server(config, args, free_port(), variant)
                try:
                    server.start()
                    run = run_load(args, meta, server, admin, warmup=args.warmup, duration=args.duration)
                finally:
                    server.stop()
                checks = verify(meta["study_id"], votes_created=run["votes_created_total"])
                connections.close_all()
                run["checks_failed"] = [c for c in checks if not c["ok"]]
                report["checks"][name if not attempt else f"{name} (attempt {attempt + 1})"] = checks
                for check in run["checks_failed"]:
                    failed = True
                    print(f"  CHECK FAILED: {check['name']}: {check['bad']} {check['detail']}")
                attempts.append(run)
                other = run["cpu"]["other_load_share"] or 0.0
                if other <= args.max_other_load:
                    break
                if attempt < args.retries:
                    log(f"{name}: other work used {other:.0%} of the machine in the window: measuring again")
            run = min(attempts, key=lambda r: r["cpu"]["other_load_share"] or 0.0)
            run["app_digest"] = app_version()["digest"]
            if run["app_digest"] != report["app"]["digest"]:
                print(f"  {'':<14} WARNING: the app's code changed since the run began: this run measured other code")
            run["config"] = config.name
            run["variant"] = variant.name if variant else None
            run["attempts_other_load"] = [r["cpu"]["other_load_share"] for r in attempts]
            report["runs"][name] = run
            print_run(name, run)
            if not any(r["checks_failed"] for r in attempts):
                print(f"  {'':<14} all checks passed: no double assignment, counters equal the recount")

        for config in args.server_configs:
            measure(config, None)
        best = max(
            (name for name, run in report["runs"].items() if run["variant"] is None),
            key=lambda name: report["runs"][name]["cycles_per_second"],
        )
        report["best"] = best
        best_config = next(c for c in args.server_configs if c.name == best)
        what_if_configs = args.what_if_configs or [best_config]
        for variant in args.what_if:
            report["what_if"][variant.name] = variant.description
            for config in what_if_configs:
                measure(config, variant)
        overall = max(report["runs"], key=lambda name: report["runs"][name]["cycles_per_second"])
        report["best_overall"] = overall

        if args.profile_cycles:
            variant = args.profile_what_if
            log(
                f"in-process profile: {args.profile_cycles} cycles per arm through the WSGI handler, as is"
                + (f" against {variant.name}, alternating" if variant else "")
            )
            restore_database(args, admin)
            profile = in_process_profile(meta, args.profile_cycles, args, admin, variant)
            report["in_process"] = profile["as is"]
            if variant is not None:
                report["in_process_what_if"] = profile[variant.name]
            report["in_process_method"] = {key: profile[key] for key in ("rounds", "cycles_per_arm")}
            report["explain"] = explain_slot_query(meta)
            checks = verify(meta["study_id"], votes_created=None)
            report["checks"]["in-process profile"] = checks
            for check in checks:
                if not check["ok"]:
                    failed = True
                    print(f"  CHECK FAILED (profile run): {check['name']}: {check['bad']} {check['detail']}")
            connections.close_all()
        spy = py_spy_path()
        if args.py_spy_seconds and spy is not None:
            run = report["runs"][overall]
            config = next(c for c in [*args.server_configs, *what_if_configs] if c.name == run["config"])
            variant = VARIANTS.get(run["variant"] or "")
            log(f"py-spy: sampling the gunicorn workers for {args.py_spy_seconds:.0f} s under load ({overall})")
            report["py_spy"] = py_spy_profile(args, meta, config, variant, admin, spy)
        elif args.py_spy_seconds:
            report["py_spy"] = {"error": "py-spy is not installed (pip install py-spy to sample the server)"}
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the server and the clients", file=sys.stderr)
        return 130
    except RuntimeError as error:
        print(f"run failed: {error}", file=sys.stderr)
        return 2
    finally:
        _stop_children()
        connections.close_all()
        if not args.keep_db:
            drop_database(admin, BENCH_DB)
            drop_database(admin, TEMPLATE_DB)

    report["checks_passed"] = not failed
    after = app_version()
    report["app_changed_during_run"] = after["digest"] != report["app"]["digest"]
    print_report(report)
    if report["app_changed_during_run"]:
        print(
            f"\nWARNING: the app's code changed during the run ({report['app']['commit']} -> {after['commit']}): "
            "runs before and after the change measured different code; run again."
        )
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"task_cycle-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    report["json"] = str(path.relative_to(REPO))
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\nJSON: {report['json']}")
    if not args.no_record:
        with RESULTS_MD.open("a") as results:
            results.write(markdown_section(report))
        print(f"Appended a section to {RESULTS_MD.relative_to(REPO)}")
    return 1 if failed else 0


def print_in_process(title: str, profile: dict[str, Any]) -> None:
    print(f"\n=== Where the time goes, {title}: one request at a time through Django's WSGI handler ===")
    print(f"  (other work used {profile['other_load_share']:.0%} of the machine meanwhile)")
    for endpoint, e in profile["endpoints"].items():
        print(
            f"  {endpoint}: wall {e['wall_ms']} ms (p50 {e['wall_p50_ms']}), CPU {e['cpu_ms']} ms, "
            f"{e['queries']} SQL statements taking {e['sql_ms']} ms, health check {e['health_check_ms']} ms, "
            f"Python {e['python_ms']} ms"
        )
        for statement in e["statements"][:16]:
            print(
                f"      {statement['per_request']:>4}x {statement['mean_ms']:>7.3f} ms "
                f"({statement['total_share']:>4.0%} of SQL)  {statement['sql'][:110]}"
            )
    print(
        f"  cProfile CPU self time by package ({profile['cprofile']['ms_per_request']} ms CPU/request under cProfile):"
    )
    for name, share in profile["cprofile"]["shares"].items():
        print(f"      {share:>5.0%}  {name}")


def little(raters: int) -> str:
    return (
        f"Little's law: {raters} raters with no pause between cycles keep {raters} cycles in flight, so the mean "
        f"cycle latency is {raters} / throughput; p99 < {TARGET_P99_MS} ms needs well over "
        f"{raters * 1000 // TARGET_P99_MS} cycles/s. The two targets are one."
    )


def verdict(title: str, name: str, run: dict[str, Any]) -> str:
    met_rate = run["cycles_per_second"] >= TARGET_CYCLES_PER_SECOND
    met_p99 = (run["cycle"]["p99_ms"] or 1e9) < TARGET_P99_MS
    return (
        f"{title}: {name}: {run['cycles_per_second']} cycles/s (target >= {TARGET_CYCLES_PER_SECOND}: "
        f"{'met' if met_rate else 'NOT met'}), cycle p99 {run['cycle']['p99_ms']} ms (target < {TARGET_P99_MS} ms: "
        f"{'met' if met_p99 else 'NOT met'})."
    )


def print_report(report: dict[str, Any]) -> None:
    print("\n=== Results (measured window only) ===")
    for name, run in report["runs"].items():
        print_run(name, run)
    print()
    print(verdict("Best, the app as it is", report["best"], report["runs"][report["best"]]))
    if report["best_overall"] != report["best"]:
        overall = report["best_overall"]
        print(verdict("Best what-if (measured without editing the app)", overall, report["runs"][overall]))
    for name, description in report["what_if"].items():
        print(f"  what-if {name}: {description}")
    print(little(report["parameters"]["raters"]))
    print(f"Checks: {'all passed' if report['checks_passed'] else 'FAILED'}.")
    for key, title in (
        ("in_process", "the app as it is"),
        ("in_process_what_if", f"what-if {report.get('in_process_what_if', {}).get('variant')}"),
    ):
        if report.get(key):
            print_in_process(title, report[key])
    explain = report.get("explain")
    if explain and "execution_ms" in explain:
        print(f"\n  Slot query (_lock_open_slot) EXPLAIN ANALYZE, median of 5: {explain['execution_ms']} ms")
        for line in explain["plan"][:8]:
            print(f"      {line[:150]}")
    spy = report.get("py_spy")
    if spy:
        print("\n=== py-spy: where a gunicorn worker's time goes while it handles a request, under load ===")
        if "error" in spy:
            print(f"  {spy['error']}")
        else:
            print(f"  {spy['config']}, {spy['samples']} wall-clock samples; by leaf frame:")
            for name, share in spy["self_time_shares"].items():
                print(f"      {share:>5.0%}  {name}")
            print("  inclusive (a frame anywhere in the stack):")
            for name, share in spy["inclusive_shares"].items():
                print(f"      {share:>5.0%}  {name}")


if __name__ == "__main__":
    sys.exit(main())
