"""Rolling upgrades (sql/migrations/README.md: expand first, contract in a later release): the next
release's migration is applied while daemons of this release deliver, and they keep delivering; daemons
are then replaced one by one with nothing lost and nothing sent twice.

The next release does not exist yet, so its migration is written here in the form the rules allow (a
nullable column, a new index built under a lock timeout, a new function, a new view, a constraint NOT
VALID) and recorded as the version after this build's last, as `pgcourierctl migrate` of that release would. The daemons are this
build: against the newer schema they are the "old" daemons of the upgrade."""
import threading
import time

import psycopg2
import psycopg2.errors

from conftest import wait_for

NEXT_RELEASE_DELTA = """
SET LOCAL lock_timeout = '2s';
-- In the order producers take them (an event, then its deliveries), so the delta cannot deadlock with a
-- publish: it waits behind one instead, or gives up after lock_timeout and is retried.
LOCK TABLE courier.events, courier.deliveries IN ACCESS EXCLUSIVE MODE;
ALTER TABLE courier.deliveries ADD COLUMN region text;
ALTER TABLE courier.events ADD COLUMN source text DEFAULT 'api';
CREATE INDEX deliveries_region ON courier.deliveries (region) WHERE region IS NOT NULL;
ALTER TABLE courier.events ADD CONSTRAINT events_source_check CHECK (source IN ('api', 'ingress')) NOT VALID;
CREATE FUNCTION courier.delivery_region(id text) RETURNS text LANGUAGE sql STABLE
  SET search_path = pg_catalog, courier, pg_temp AS $$ SELECT region FROM courier.deliveries WHERE deliveries.id = $1 $$;
CREATE VIEW courier.deliveries_by_region AS SELECT region, count(*) FROM courier.deliveries GROUP BY region;
INSERT INTO courier.schema_migrations (version, name)
  SELECT max(version) + 1, 'next_release_expand' FROM courier.schema_migrations;
"""


def test_next_release_migration_applied_under_load_then_daemons_replaced_one_by_one(
        db, db_url, receiver, create_subscription, daemon_factory):
    create_subscription(receiver.url("/ok"))
    this_release = db.value("SELECT max(version) FROM courier.schema_migrations")
    settings = dict(poll_interval="200ms", rescue_interval="200ms", lease_duration="3s")
    old = [daemon_factory("old1", **settings), daemon_factory("old2", **settings)]

    published, errors = [], []
    stop = threading.Event()

    def produce():
        from conftest import Database
        producer = Database(db_url)
        try:
            i = 0
            while not stop.is_set():
                try:
                    published.append(producer.publish("acme", "order.created", f'{{"n": {i}}}'))
                except Exception as e:  # noqa: BLE001 - any failure of a producer is a finding
                    errors.append(repr(e))
                i += 1
                time.sleep(0.005)
        finally:
            producer.close()

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        wait_for(lambda: len(receiver.hits) >= 100, timeout=30, what="deliveries flowing before the upgrade")
        # The migration of the next release, as its migrate would run it: one transaction.
        # As a careful migrator runs it under load: one transaction, retried when lock_timeout gives up.
        migrator = db.conn
        migrator.autocommit = False
        for attempt in range(10):
            try:
                with migrator.cursor() as cur:
                    cur.execute(NEXT_RELEASE_DELTA)
                migrator.commit()
                break
            except (psycopg2.errors.LockNotAvailable, psycopg2.errors.DeadlockDetected):
                migrator.rollback()
                time.sleep(0.2)
        else:
            raise AssertionError("the delta never got its locks in 10 tries")
        migrator.autocommit = True
        at_migration = len(receiver.hits)
        wait_for(lambda: len(receiver.hits) >= at_migration + 200, timeout=30,
                 what="the old daemons delivering on the expanded schema")

        # Replace the daemons one by one (SIGTERM drains; the new one starts against the next version).
        for i, d in enumerate(old):
            d.stop()
            assert d.proc.returncode == 0, d.log()[-2000:]
            daemon_factory(f"new{i + 1}", **settings)
            before = len(receiver.hits)
            wait_for(lambda: len(receiver.hits) >= before + 100, timeout=30, what=f"new{i + 1} delivering")
    finally:
        stop.set()
        producer.join()

    assert not errors, errors[:3]
    wait_for(lambda: db.statuses() == {"delivered": len(published)}, timeout=60,
             what=f"all {len(published)} deliveries delivered")
    seen = [h["headers"]["webhook-id"] for h in receiver.hits]
    assert sorted(seen) == sorted(published), "each event exactly once across the upgrade"
    assert db.value("SELECT max(version) FROM courier.schema_migrations") == this_release + 1
    # The new objects are there and usable, the old daemons' statements never needed them.
    assert db.value("SELECT count(*) FROM courier.deliveries_by_region") >= 1
