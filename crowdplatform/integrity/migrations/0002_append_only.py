"""What is published stays published, in the database itself, not only in the code.

- policy versions, published results and period releases are append-only: UPDATE and DELETE refused;
- a submission is never deleted, and what identifies it (leaderboard, provider, system, license class,
  pre-release or not, period, registration, window) never changes; once published or retired it stays so.

PostgreSQL refuses all of it; SQLite (the local fallback) refuses the updates only, because Django's
test flush empties tables with DELETE there (PostgreSQL flushes with TRUNCATE, which row triggers do
not see), as for the payments ledger.
"""

from django.db import migrations

APPEND_ONLY = ("integrity_policyversion", "integrity_publishedresult", "integrity_periodrelease")
FIXED = (
    "leaderboard_id",
    "provider_id",
    "system_id",
    "license_class",
    "prerelease",
    "period_start",
    "registered_at",
    "window_ends_at",
)
CHANGED = " OR ".join(f"NEW.{column} IS DISTINCT FROM OLD.{column}" for column in FIXED)
# SQLite spells "is distinct from" IS NOT.
SQLITE_CHANGED = " OR ".join(f"NEW.{column} IS NOT OLD.{column}" for column in FIXED)

POSTGRES_FORWARD = [
    """
CREATE OR REPLACE FUNCTION integrity_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION USING MESSAGE = 'published records are append-only: ' || TG_OP || ' on ' || TG_TABLE_NAME || ' refused';
END;
$$ LANGUAGE plpgsql;
""",
    *(
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION integrity_append_only();"
        for table in APPEND_ONLY
    ),
    f"""
CREATE OR REPLACE FUNCTION integrity_submission_permanent() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION USING MESSAGE = 'a submission is never deleted';
    END IF;
    IF {CHANGED} THEN
        RAISE EXCEPTION USING MESSAGE = 'a submission''s registration never changes';
    END IF;
    IF (OLD.published_at IS NOT NULL AND NEW.published_at IS DISTINCT FROM OLD.published_at)
       OR (OLD.retired_at IS NOT NULL AND NEW.retired_at IS DISTINCT FROM OLD.retired_at) THEN
        RAISE EXCEPTION USING MESSAGE = 'a published or retired submission stays so';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
""",
    "CREATE TRIGGER integrity_submission_permanent BEFORE UPDATE OR DELETE ON integrity_submission "
    "FOR EACH ROW EXECUTE FUNCTION integrity_submission_permanent();",
]
POSTGRES_BACKWARD = [
    *(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table};" for table in APPEND_ONLY),
    "DROP TRIGGER IF EXISTS integrity_submission_permanent ON integrity_submission;",
    "DROP FUNCTION IF EXISTS integrity_append_only();",
    "DROP FUNCTION IF EXISTS integrity_submission_permanent();",
]
SQLITE_FORWARD = [
    *(
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE ON {table} "
        "BEGIN SELECT RAISE(ABORT, 'published records are append-only (UPDATE refused)'); END;"
        for table in APPEND_ONLY
    ),
    f"CREATE TRIGGER integrity_submission_permanent BEFORE UPDATE ON integrity_submission "
    f"WHEN {SQLITE_CHANGED} OR (OLD.published_at IS NOT NULL AND NEW.published_at IS NOT OLD.published_at) "
    "OR (OLD.retired_at IS NOT NULL AND NEW.retired_at IS NOT OLD.retired_at) "
    "BEGIN SELECT RAISE(ABORT, 'a submission''s registration, publication and retirement never change'); END;",
]
SQLITE_BACKWARD = [
    *(f"DROP TRIGGER IF EXISTS {table}_append_only;" for table in APPEND_ONLY),
    "DROP TRIGGER IF EXISTS integrity_submission_permanent;",
]


def _run(sql_by_vendor):
    def run(apps, schema_editor):
        for statement in sql_by_vendor.get(schema_editor.connection.vendor, []):
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [("integrity", "0001_initial")]

    operations = [
        migrations.RunPython(
            _run({"postgresql": POSTGRES_FORWARD, "sqlite": SQLITE_FORWARD}),
            _run({"postgresql": POSTGRES_BACKWARD, "sqlite": SQLITE_BACKWARD}),
        )
    ]
