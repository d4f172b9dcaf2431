"""Make the ledger append-only in the database itself, not only in the code.

Transactions and entries are never updated or deleted: a correction is a new, reversing
posting. PostgreSQL refuses UPDATE and DELETE; SQLite (the local fallback) refuses UPDATE
only, because Django's test flush empties tables with DELETE there (PostgreSQL flushes with
TRUNCATE, which row triggers do not see). Cached account balances are not covered: postings
update them, and `ledger_check` proves them against the entries.
"""

from django.db import migrations

TABLES = ("payments_ledgertransaction", "payments_ledgerentry")

POSTGRES_FORWARD = [
    """
CREATE OR REPLACE FUNCTION payments_ledger_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION USING MESSAGE = 'the ledger is append-only: ' || TG_OP || ' on ' || TG_TABLE_NAME || ' refused';
END;
$$ LANGUAGE plpgsql;
""",
    *(
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION payments_ledger_append_only();"
        for table in TABLES
    ),
]
POSTGRES_BACKWARD = [
    *(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table};" for table in TABLES),
    "DROP FUNCTION IF EXISTS payments_ledger_append_only();",
]
SQLITE_FORWARD = [
    f"CREATE TRIGGER {table}_append_only BEFORE UPDATE ON {table} "
    "BEGIN SELECT RAISE(ABORT, 'the ledger is append-only (UPDATE refused)'); END;"
    for table in TABLES
]
SQLITE_BACKWARD = [f"DROP TRIGGER IF EXISTS {table}_append_only;" for table in TABLES]


def _run(sql_by_vendor):
    def run(apps, schema_editor):
        for statement in sql_by_vendor.get(schema_editor.connection.vendor, []):
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [("payments", "0001_initial")]

    operations = [
        migrations.RunPython(
            _run({"postgresql": POSTGRES_FORWARD, "sqlite": SQLITE_FORWARD}),
            _run({"postgresql": POSTGRES_BACKWARD, "sqlite": SQLITE_BACKWARD}),
        )
    ]
