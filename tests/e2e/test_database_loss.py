"""End to end: the daemon survives losing its database in the middle of a run."""
import os
import subprocess

import pytest

from conftest import ROOT, policy, wait_for


# They stop the cluster every test shares: run alone (tests/run runs serial tests after the others).
pytestmark = pytest.mark.serial


def restart_postgres(fast_stop=True):
    pgdir = os.environ["PGCOURIER_TEST_PGDIR"]
    pg_local = os.path.join(ROOT, "tools", "pg-local")
    subprocess.check_call([pg_local, "stop", pgdir])
    return lambda: subprocess.check_output([pg_local, "start", pgdir, "--fast"], env={**os.environ, "PGLOCAL_DB": "postgres"})


def test_results_written_after_the_database_comes_back_and_nothing_is_lost(
        db, make_receiver, create_subscription, daemon_factory, write_policies):
    # Requests take 1 s; the database goes away while they are in flight, so
    # their results must wait in memory and be written after reconnecting.
    policies = write_policies({"default": policy(connect="1s", request="5s", max_attempts=5, base="100ms")})
    receivers = [make_receiver() for _ in range(3)]
    for i, r in enumerate(receivers):
        create_subscription(r.url("/hang/1"), events=f"order.e{i}")
    d1 = daemon_factory("d1", policies_file=policies, poll_interval="100ms", rescue_interval="200ms")
    events = [db.publish("acme", f"order.e{i}", f'{{"n": {i}}}') for i in range(3)]
    wait_for(lambda: all(r.hits for r in receivers), what="requests in flight")
    db.close()

    start_again = restart_postgres()
    wait_for(lambda: "database connection lost" in d1.log() or "cannot reach the database" in d1.log(),
             timeout=10, what="the daemon to notice the database is gone")
    start_again()

    from conftest import Database
    fresh = Database(db.url)
    try:
        wait_for(lambda: all(fresh.value("SELECT status FROM courier.deliveries WHERE event_id = %s", e) == "delivered"
                             for e in events), timeout=20, what="every delivery delivered after the restart")
        assert d1.proc.poll() is None, "the daemon must keep running through a database restart"
        # The main session notices on its next statement (a claim, at least every poll_interval).
        wait_for(lambda: "database connection established" in d1.log(), timeout=10,
                 what="the daemon's main session to reconnect")
        # One delivery each, and no attempt lost or doubled: exactly one delivered attempt per delivery.
        rows = fresh.query("SELECT d.event_id, count(*) FILTER (WHERE a.outcome = 'delivered') "
                           "FROM courier.deliveries d JOIN courier.delivery_attempts a ON a.delivery_id = d.id "
                           "GROUP BY d.event_id")
        assert sorted(rows) == sorted((e, 1) for e in events)
        # Published after the restart: still delivered (LISTEN was re-established).
        r = make_receiver()
        create_subscription(r.url("/ok"), events="after.restart")
        late = fresh.publish("acme", "after.restart", "{}")
        wait_for(lambda: fresh.value("SELECT status FROM courier.deliveries WHERE event_id = %s", late) == "delivered",
                 timeout=10, what="an event published after the restart")
    finally:
        fresh.close()
