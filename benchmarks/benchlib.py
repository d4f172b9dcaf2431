"""What the benchmarks share: setting Django up, the throwaway database they run on, and recording results."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"


def summary_report(name: str, summary: dict[str, Any], *, record: bool = True) -> Path | None:
    """Print a benchmark's summary as JSON and, unless told not to, keep it as
    `benchmarks/results/<name>-<UTC timestamp>.json` (the file RESULTS.md cites)."""
    text = json.dumps(summary, indent=2)
    print(text)
    if not record:
        return None
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(text + "\n")
    return path


def django_setup_in_process() -> None:
    """Django for a benchmark that makes its own test database (`connection.creation.create_test_db`):
    development settings, quiet logs, background tasks in-process."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crowdplatform.settings")
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["CELERY_BROKER_URL"] = ""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    import django

    django.setup()


class Database:
    """The throwaway database a benchmark runs on: `<name><suffix>` on the PostgreSQL server of
    DATABASE_URL (dropped and recreated, dropped again at the end), or a SQLite file in a temporary folder."""

    def __init__(self, url: str | None, *, suffix: str, prefix: str) -> None:
        self.source = url
        self.postgres = bool(url) and urlsplit(url).scheme.startswith("postgres")
        self.tmpdir: str | None = None
        if self.postgres:
            parts = urlsplit(url)
            self.name = (parts.path.lstrip("/") or "postgres") + suffix
            self.admin_url = urlunsplit(parts._replace(path="/postgres"))
            self.url = urlunsplit(parts._replace(path=f"/{self.name}"))
        else:
            self.tmpdir = tempfile.mkdtemp(prefix=prefix)
            self.name = str(Path(self.tmpdir) / "bench.sqlite3")
            self.url = f"sqlite:///{self.name}"

    @property
    def vendor(self) -> str:
        return "postgresql" if self.postgres else "sqlite"

    def _admin(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            admin.execute(statement)

    def create(self) -> None:
        if self.postgres:
            self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            self._admin(f'CREATE DATABASE "{self.name}"')

    def drop(self) -> None:
        from django.db import connections

        connections.close_all()
        if self.postgres:
            self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        elif self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    def server_version(self) -> str:
        from django.db import connection

        if self.postgres:
            with connection.cursor() as cursor:
                cursor.execute("SHOW server_version")
                return f"PostgreSQL {cursor.fetchone()[0]}"
        import sqlite3

        return f"SQLite {sqlite3.sqlite_version}"
