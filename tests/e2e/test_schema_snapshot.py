"""The schema a fresh `pgcourierctl migrate` creates is the one checked in as sql/schema.snapshot.sql.

A change to sql/schema/ or sql/migrations/ shows up here as a diff of the
pg_dump output, privileges included. When the change is intended, regenerate
the snapshot (make schema-snapshot) and commit it with the change.
"""
import difflib
import importlib.machinery
import importlib.util
import os
import subprocess
import uuid

import psycopg2

from conftest import PGCOURIERCTL, ROOT

# tools/schema-snapshot has no .py suffix: load it by path (its normalise() is the one that wrote the file).
_loader = importlib.machinery.SourceFileLoader("schema_snapshot", os.path.join(ROOT, "tools", "schema-snapshot"))
_spec = importlib.util.spec_from_loader("schema_snapshot", _loader)
schema_snapshot = importlib.util.module_from_spec(_spec)
_loader.exec_module(schema_snapshot)


def test_a_fresh_migrate_dumps_exactly_as_sql_schema_snapshot(pg_admin_url):
    name = "e2e_snapshot_" + uuid.uuid4().hex[:8]
    admin = psycopg2.connect(pg_admin_url)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')  # empty: not the template, a migrate of its own
    url = pg_admin_url.rsplit("/", 1)[0] + "/" + name
    try:
        subprocess.run([PGCOURIERCTL, "migrate"], check=True, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "DATABASE_URL": url})
        actual = schema_snapshot.dump(url)
    finally:
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
    with open(schema_snapshot.SNAPSHOT) as f:
        expected = f.read()
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(keepends=True), actual.splitlines(keepends=True),
                                            "sql/schema.snapshot.sql (checked in)", "a fresh pgcourierctl migrate"))
        raise AssertionError("the migrated schema differs from sql/schema.snapshot.sql; if the change is intended, "
                             "run `make schema-snapshot` and commit the file with it:\n" + diff)


def test_the_snapshot_leaves_out_the_date_named_partitions_and_the_pg_dump_preamble():
    with open(schema_snapshot.SNAPSHOT) as f:
        text = f.read()
    assert schema_snapshot.DATE_PARTITION.search(text) is None
    assert "courier.delivery_attempts_default" in text and "courier.run_attempts_default" in text
    assert "-- Dumped by pg_dump" not in text and "\\restrict" not in text
    assert "\nSET " not in text
    # Privileges are part of the contract.
    assert "GRANT USAGE ON SCHEMA courier TO courier_producer;" in text
    assert "REVOKE ALL ON FUNCTION courier.prune_runs(" in text
