"""End to end, operations: retention. The maintenance leader removes finished deliveries older than
their window (delivered/failed: retention_completed; dead letters: retention_dead_lettered) with their
events, counts them in pgcourier_pruned_deliveries_total, and drops whole daily partitions of
courier.delivery_attempts once the longest retention has passed them."""
import time

from conftest import wait_for
from ops_helpers import exact_sample, metrics_daemon, metrics_port, parse_samples, publish_together, scrape


def test_retention_removes_old_deliveries_attempts_and_events_and_keeps_recent_ones_and_younger_dead_letters(
        db, receiver, create_subscription, daemon_factory):
    create_subscription(receiver.url("/ok"), events="order.*")
    create_subscription(receiver.url("/status/500"), events="invoice.*", policy="impatient")
    d = metrics_daemon(daemon_factory, "d1", retention_completed="1m", retention_dead_lettered="2m",
                       maintenance_interval="200ms", rescue_interval="200ms", poll_interval="100ms")
    port = metrics_port(d)
    orders = publish_together(db, [("acme", "order.created", f'{{"n": {i}}}') for i in range(4)])
    invoices = publish_together(db, [("acme", "invoice.created", f'{{"n": {i}}}') for i in range(2)])
    wait_for(lambda: db.statuses() == {"delivered": 4, "dead_lettered": 2}, timeout=10,
             what="4 delivered and 2 dead-lettered")
    time.sleep(0.5)  # a few maintenance ticks: nothing is old enough yet
    assert db.value("SELECT count(*) FROM courier.deliveries") == 6
    assert "retention: removed" not in d.log()

    delivery = {e: db.delivery(e)["id"] for e in orders + invoices}
    old_orders, recent_orders = orders[:2], orders[2:]
    dead_90s, dead_3min = invoices
    # Made old as they would be: created before they completed (retention sweeps by creation time).
    db.query("UPDATE courier.deliveries SET created_at = now() - interval '91 seconds', "
             "completed_at = now() - interval '90 seconds' WHERE event_id = ANY(%s)", old_orders + [dead_90s])
    db.query("UPDATE courier.deliveries SET created_at = now() - interval '181 seconds', "
             "completed_at = now() - interval '3 minutes' WHERE event_id = %s", dead_3min)
    removed = {delivery[e] for e in old_orders + [dead_3min]}

    wait_for(lambda: db.value("SELECT count(*) FROM courier.deliveries WHERE id = ANY(%s)", list(removed)) == 0,
             timeout=5, what="the old deliveries to be pruned")
    time.sleep(0.5)  # more ticks: what is kept stays kept

    kept = {delivery[e] for e in recent_orders + [dead_90s]}
    assert {r for r, in db.query("SELECT id FROM courier.deliveries")} == kept
    # Attempts leave with their day's partition, not row by row: today's stay, but the timeline of a
    # removed delivery is gone (the view joins the deliveries), and the kept ones keep theirs.
    assert {r for r, in db.query("SELECT delivery_id FROM courier.delivery_timeline")} == kept
    assert {r for r, in db.query("SELECT id FROM courier.events")} == set(recent_orders + [dead_90s])
    assert db.value("SELECT count(*) FROM courier.dead_letters") == 1
    assert db.value("SELECT delivery_id FROM courier.dead_letters") == delivery[dead_90s]

    wait_for(lambda: exact_sample(parse_samples(scrape(port)), "pgcourier_pruned_deliveries_total") == 3,
             timeout=5, what="pgcourier_pruned_deliveries_total to reach 3")
    assert "retention: removed" in d.log()
    assert exact_sample(parse_samples(scrape(port)), "pgcourier_pruned_deliveries_total") == 3


def test_retention_drops_whole_daily_attempt_partitions_past_the_longest_window(db, daemon_factory):
    # Partitions for the last three days, and attempts two days old in one of them and 40 days old
    # (in the default partition, where rows outside every daily partition land).
    db.query("SELECT courier.maintain_attempt_partitions(0, 3)")
    two_days_ago = db.value("SELECT 'delivery_attempts_p' || to_char((now() AT TIME ZONE 'UTC')::date - 2, 'YYYYMMDD')")
    assert db.value("SELECT to_regclass('courier.' || %s) IS NOT NULL", two_days_ago)
    db.query("INSERT INTO courier.delivery_attempts (delivery_id, attempt, started_at, outcome, worker) VALUES "
             "('dlv_old', 1, now() - interval '2 days', 'delivered', 'w'), "
             "('dlv_ancient', 1, now() - interval '40 days', 'delivered', 'w'), "
             "('dlv_today', 1, now(), 'delivered', 'w')")
    assert db.value("SELECT count(*) FROM courier.delivery_attempts_default") == 1
    daemon_factory("d1", retention_completed="1m", retention_dead_lettered="2m", maintenance_interval="200ms",
                   rescue_interval="200ms")
    wait_for(lambda: not db.value("SELECT to_regclass('courier.' || %s) IS NOT NULL", two_days_ago), timeout=10,
             what="the partition of two days ago to be dropped")
    assert {r for r, in db.query("SELECT delivery_id FROM courier.delivery_attempts")} == {"dlv_today"}
    # Partitions keep being created a week ahead.
    ahead = db.value("SELECT 'delivery_attempts_p' || to_char((now() AT TIME ZONE 'UTC')::date + 7, 'YYYYMMDD')")
    assert db.value("SELECT to_regclass('courier.' || %s) IS NOT NULL", ahead)


def test_a_retention_sweep_that_waits_does_not_hold_up_delivery(db, receiver, create_subscription, daemon_factory):
    """Retention runs on a thread and session of its own (engine/retention.hpp): a sweep that waits (here
    on a lock; under a held snapshot, on re-reading what earlier sweeps removed) delays only itself. On
    the engine's thread, as before, every claim waited behind it until its statement timed out (12 s)."""
    import psycopg2
    create_subscription(receiver.url("/ok"), events="order.*")
    d = daemon_factory("d1", maintenance_interval="200ms", rescue_interval="200ms", poll_interval="100ms")
    blocker = psycopg2.connect(db.url)
    try:
        with blocker.cursor() as cur:
            cur.execute("SELECT * FROM courier.prune_cursor FOR UPDATE")

        def sweep_waiting():
            return db.value("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                            "AND query LIKE '%%courier.prune(%%'") == 1
        wait_for(sweep_waiting, timeout=10, what="the daemon's retention sweep to wait for the lock")
        started = time.monotonic()
        events = [db.publish("acme", "order.created", f'{{"n": {i}}}') for i in range(20)]
        wait_for(lambda: len(receiver.hits) >= len(events), timeout=5, what="the events to arrive")
        took = time.monotonic() - started
        assert sweep_waiting(), "the sweep stopped waiting: the test proved nothing"
        assert sorted(h["headers"]["webhook-id"] for h in receiver.hits) == sorted(events)
        print(f"20 events delivered in {took * 1000:.0f} ms while the retention sweep waited")
    finally:
        blocker.rollback()
        blocker.close()
    # The sweep then completes: no error, and the daemon keeps pruning.
    wait_for(lambda: not sweep_waiting(), timeout=5, what="the sweep to finish")
    assert "retention (deliveries) failed" not in d.log()
