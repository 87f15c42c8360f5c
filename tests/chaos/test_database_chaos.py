"""Chaos: PostgreSQL restarts under the daemons' feet, and is missing when a daemon starts."""
import re
import time

from chaos_helpers import bulk_events, connect_when_up, pg_start, pg_stop, summary
from conftest import policy, wait_for


def test_postgres_restart_mid_run_loses_nothing_and_daemons_keep_running(
        db, make_receiver, create_subscription, daemon_factory, write_policies):
    n = 3000
    receiver = make_receiver()
    # Each request takes 0.1 s, so a few hundred are in flight at any moment and the backlog lasts seconds.
    create_subscription(receiver.url("/hang/0.1"))
    policies = write_policies({"default": policy(max_attempts=10, base="100ms", cap="1s",
                                                 connect="1s", request="2s")})
    settings = dict(policies_file=policies, lease_duration="3s", rescue_interval="200ms", poll_interval="200ms",
                    concurrency=128)
    daemons = [daemon_factory("r1", **settings), daemon_factory("r2", **settings)]
    assert bulk_events(db, n) == n
    wait_for(lambda: db.value("SELECT count(*) FROM courier.deliveries WHERE status = 'delivered'") >= n // 10,
             timeout=60, interval=0.05, what="a tenth of the backlog delivered")
    before = db.statuses()
    db.close()

    started_down = time.monotonic()
    try:
        pg_stop()
        wait_for(lambda: all("database connection lost" in d.log() or "cannot reach the database" in d.log()
                             for d in daemons), timeout=15, what="both daemons to notice the database is gone")
        # Down longer than a lease (3 s, and no heartbeat reaches the database): results pile up in memory while
        # their leases run out, so on reconnection outcome writes race the lease rescue.
        time.sleep(4.5)
    finally:
        pg_start()
    down_seconds = time.monotonic() - started_down
    fresh = connect_when_up(db.url)
    try:
        wait_for(lambda: fresh.value("SELECT count(*) FROM courier.deliveries WHERE status <> 'delivered'") == 0,
                 timeout=90, interval=0.2, what=f"all {n} deliveries delivered after the restart")
        # Nothing is left in the queue: no lease, no row of a finished delivery.
        assert fresh.value("SELECT count(*) FROM courier.delivery_queue") == 0
        assert fresh.statuses() == {"delivered": n}
        for d in daemons:
            assert d.proc.poll() is None, f"{d.name} exited with {d.proc.returncode}:\n{d.log()[-3000:]}"
            assert "database connection established" in d.log(), d.log()[-3000:]
        doubly = fresh.query("SELECT delivery_id, count(*) FROM courier.delivery_attempts WHERE outcome = 'delivered' "
                             "GROUP BY delivery_id HAVING count(*) <> 1")
        assert not doubly, f"deliveries with more than one 'delivered' attempt: {doubly[:5]}"
        seen = {}
        for h in receiver.hits:
            seen[h["headers"].get("webhook-id")] = seen.get(h["headers"].get("webhook-id"), 0) + 1
        events = {r[0] for r in fresh.query("SELECT id FROM courier.events")}
        assert events <= set(seen), f"{len(events - set(seen))} event(s) never reached the receiver"
        # Both daemons lived through the outage and kept their results: after the reconnect those are
        # written before the leader takes back any lease, so nothing was sent twice.
        duplicated = sorted(e for e, c in seen.items() if c > 1)
        assert not duplicated, f"{len(duplicated)} event(s) sent twice after the outage, e.g. {duplicated[:5]}"
        expired = fresh.value("SELECT count(DISTINCT delivery_id) FROM courier.delivery_attempts "
                              "WHERE outcome = 'lease_expired'")
        summary("pg_restart", deliveries=n, delivered_before_stop=before.get("delivered", 0),
                delivering_at_stop=before.get("delivering", 0), down_seconds=round(down_seconds, 1),
                lease_expired_deliveries=expired, receiver_requests=len(receiver.hits))
    finally:
        fresh.close()


def test_postgres_unavailable_at_start_then_available(
        db, receiver, create_subscription, daemon_factory):
    create_subscription(receiver.url("/ok"))
    events = [db.publish("acme", "order.created", f'{{"n": {i}}}') for i in range(3)]
    db.close()
    try:
        pg_stop()
        d = daemon_factory("early", start=False, poll_interval="200ms")
        d.start(wait_ready=False)
        # 100, 200, 400, 800, 1600 ms: five failed attempts take about 3 s.
        wait_for(lambda: len(re.findall(r"cannot reach the database", d.log())) >= 5 or d.proc.poll() is not None,
                 timeout=15, what="five failed connection attempts")
        assert d.proc.poll() is None, f"pgcourierd exited ({d.proc.returncode}) without a database:\n{d.log()}"
        delays = [int(x) for x in re.findall(r"cannot reach the database \(.*?\); retrying in (\d+) ms", d.log(), re.S)]
        assert len(delays) >= 5, d.log()
        assert delays[0] >= 50, delays
        assert all(b >= a for a, b in zip(delays, delays[1:])), f"delays must not shrink: {delays}"
        assert delays[4] > delays[0], f"delays must grow: {delays}"
        assert max(delays) <= 5000, f"delays must be capped (5 s): {delays}"
        assert " ready: " not in d.log(), "ready before the database was reachable"
    finally:
        pg_start()
    fresh = connect_when_up(db.url)
    try:
        wait_for(lambda: all(fresh.value("SELECT status FROM courier.deliveries WHERE event_id = %s", e) == "delivered"
                             for e in events), timeout=20, what="the queued events delivered once the server is up")
        assert d.proc.poll() is None
        assert "database connection established" in d.log()
        assert " ready: " in d.log()
        assert sorted(h["headers"]["webhook-id"] for h in receiver.hits) == sorted(events)
        summary("pg_unavailable_at_start", connect_retry_delays_ms="/".join(map(str, delays)))
    finally:
        fresh.close()
