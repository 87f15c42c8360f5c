"""Chaos: the database fails over, or keeps cutting the daemon off, in the middle of a run.

1. A primary with a synchronous streaming standby on 127.0.0.1; the daemons know both through a libpq
   multi-host URL (target_session_attrs=read-write). The primary is killed mid-run (pg_ctl stop -m
   immediate, and in a second run a SIGKILL of its postmaster) and the standby promoted: every delivery
   ends delivered with exactly one 'delivered' attempt, every event reaches the receiver, and an event
   reaches it twice only if its lease was taken over (a 'lease_expired' attempt).
2. The same with the primary frozen (SIGSTOP) instead of killed: nothing closes the connections, the
   daemons' database_timeout (3 s) gets them off it, and the first delivery through the new primary
   comes within database_timeout plus one connect_timeout of the freeze; the same checks after.
3. Every backend of the daemon is terminated (pg_terminate_backend) again and again for 10 s while
   events keep arriving: nothing is lost, and each time the daemon has its connections back within
   a second.

All record their figures with summary() (tests/chaos/run prints them)."""
import os
import random
import threading
import time

import psycopg2
import pytest

from chaos_helpers import (ReplicatedPostgres, backends, bulk_events, connect_when_up, fast_receiver, freeze,
                           lease_expired_events, percentile, run_ctl, summary, terminate_backends, thaw)
from conftest import Daemon, Database, policy, wait_for


def created_subscription(db_url, master_key, url):
    out = run_ctl(db_url, master_key, "subscription", "create", "--tenant", "acme", "--url", url, "--events", "*")
    return next(line.split()[-1] for line in out.splitlines() if line.startswith("created subscription"))


def check_nothing_lost(db, hits, n):
    """Every delivery delivered once in the database, every event at the receiver, and each event the
    receiver saw twice explained by a taken-over lease. Returns (duplicated events, lease_expired events)."""
    statuses = db.statuses()
    assert statuses == {"delivered": n}, statuses
    events = {r[0] for r in db.query("SELECT id FROM courier.events")}
    missing = events - set(hits)
    assert not missing, f"{len(missing)} event(s) never reached the receiver, e.g. {sorted(missing)[:5]}"
    stray = set(hits) - events
    assert not stray, f"the receiver saw webhook-ids that are not events: {sorted(stray)[:5]}"
    doubly = db.query("SELECT delivery_id, count(*) FROM courier.delivery_attempts WHERE outcome = 'delivered' "
                      "GROUP BY delivery_id HAVING count(*) <> 1")
    assert not doubly, f"deliveries with more than one 'delivered' attempt: {doubly[:5]}"
    no_delivered = db.value("SELECT count(*) FROM courier.deliveries d WHERE NOT EXISTS (SELECT 1 FROM "
                            "courier.delivery_attempts a WHERE a.delivery_id = d.id AND a.outcome = 'delivered')")
    assert no_delivered == 0
    duplicated = {e: c for e, c in hits.items() if c > 1}
    expired = lease_expired_events(db)
    not_explained = sorted(set(duplicated) - expired)
    assert not not_explained, (f"{len(not_explained)} event(s) reached the receiver twice without a lease_expired "
                               f"attempt, e.g. {not_explained[:5]}")
    return duplicated, expired


class FailoverRun:
    """One run of the failover tests: a ReplicatedPostgres, a fast receiver, a subscription, two daemons on
    the multi-host URL (extra settings: daemon_settings) and n events, a quarter of them delivered through
    the primary when start() returns. close() stops everything (in a finally)."""

    def __init__(self, master_key, write_policies, tmp_path, **daemon_settings):
        self.master_key, self.tmp_path = master_key, str(tmp_path)
        self.cluster = ReplicatedPostgres()
        self.hook = None
        self.daemons = []
        self.primary_db = self.standby_db = None
        # Lease = 1 s request timeout + 2 s margin: a failover slower than that makes the new primary's
        # rescuer take leases over (lease_expired attempts), one faster does not.
        policies = write_policies({"default": policy(max_attempts=10, base="50ms", cap="500ms", connect="500ms",
                                                     request="1s")})
        self.settings = dict(policies_file=policies, lease_duration="3s", rescue_interval="200ms",
                             poll_interval="200ms", **daemon_settings)
        self.n = 0
        self.started = None

    def start(self):
        self.cluster.start()
        self.hook = fast_receiver(self.tmp_path)
        run_ctl(self.cluster.url("primary"), self.master_key, "migrate")
        created_subscription(self.cluster.url("primary"), self.master_key, self.hook.url())
        self.n = 6000 if self.hook.kind == "nginx" else 2000
        for name in ("f1", "f2"):
            self.daemons.append(Daemon(self.cluster.multi_host_url(), self.master_key, self.tmp_path, name,
                                       dict(self.settings)).start())
        self.primary_db = Database(self.cluster.url("primary"))
        self.started = time.monotonic()
        assert bulk_events(self.primary_db, self.n) == self.n
        wait_for(lambda: self.primary_db.value("SELECT count(*) FROM courier.deliveries WHERE status = 'delivered'")
                 >= self.n // 4, timeout=60, interval=0.02, what="a quarter of the deliveries delivered")
        statuses = dict(self.primary_db.statuses())
        self.primary_db.close()
        self.primary_db = None
        return statuses

    def promote(self):
        """Promotes the standby; returns (the time it was promoted, how many were delivered then)."""
        self.cluster.promote("standby")
        promoted_at = time.time()
        self.standby_db = connect_when_up(self.cluster.url("standby"))
        return promoted_at, self.delivered()

    def delivered(self):
        return self.standby_db.value("SELECT count(*) FROM courier.deliveries WHERE status = 'delivered'")

    def finish(self):
        """Waits until everything is delivered on the new primary and checks that nothing was lost or sent
        twice without a taken-over lease; returns (duplicated events, lease_expired events, seconds)."""
        wait_for(lambda: self.standby_db.value("SELECT count(*) FROM courier.deliveries WHERE status <> 'delivered'")
                 == 0, timeout=60, interval=0.1, what=f"all {self.n} deliveries delivered after the failover")
        elapsed = time.monotonic() - self.started
        time.sleep(0.5)  # nginx's last log lines
        duplicated, expired = check_nothing_lost(self.standby_db, self.hook.hits(), self.n)
        assert len(duplicated) <= len(expired)
        for d in self.daemons:
            assert d.proc.poll() is None, f"{d.name} exited with {d.proc.returncode}:\n{d.log()[-3000:]}"
            assert d.log().count("database connection established") >= 1, d.log()[-3000:]
        return duplicated, expired, elapsed

    def first_request_after(self, at):
        first = self.standby_db.value(
            "SELECT min(started_at) FROM courier.delivery_attempts WHERE started_at > to_timestamp(%s)", at)
        return round(first.timestamp() - at, 2) if first else None

    def close(self):
        for d in self.daemons:
            d.stop()
        reports = [(d.name, line) for d in self.daemons for line in d.sanitizer_reports()]
        for db in (self.primary_db, self.standby_db):
            if db is not None:
                db.close()
        if self.hook is not None:
            self.hook.stop()
        self.cluster.destroy()
        assert not reports, f"sanitizer reports in daemon logs: {reports[:20]}"


@pytest.mark.parametrize("how", ["immediate", "sigkill"])
def test_primary_killed_and_standby_promoted_mid_run_loses_nothing(how, master_key, write_policies, tmp_path):
    run = FailoverRun(master_key, write_policies, tmp_path)
    try:
        at_kill = run.start()
        killed_at = time.time()
        run.cluster.kill("primary", how)
        wait_for(lambda: all("database connection lost" in d.log() for d in run.daemons), timeout=15,
                 what="both daemons to notice the primary is gone")
        time.sleep(0.5)  # a failover is never instantaneous: the daemons retry against two refusing hosts
        promoted_at, delivered_at_promotion = run.promote()
        first_write = wait_for(lambda: run.delivered() > delivered_at_promotion and time.time(), timeout=30,
                               interval=0.01, what="a delivery recorded on the promoted standby")
        duplicated, expired, elapsed = run.finish()
        summary(f"failover_{how}", receiver=run.hook.kind, deliveries=run.n,
                delivered_at_kill=at_kill.get("delivered", 0), delivering_at_kill=at_kill.get("delivering", 0),
                kill_to_promoted_s=round(promoted_at - killed_at, 2),
                promoted_to_first_recorded_delivery_s=round(first_write - promoted_at, 2),
                promoted_to_first_new_request_s=run.first_request_after(promoted_at),
                duplicates=len(duplicated), extra_requests=sum(c - 1 for c in duplicated.values()),
                lease_expired_deliveries=len(expired), seconds=round(elapsed, 1))
    finally:
        run.close()


def test_primary_frozen_and_standby_promoted_mid_run_the_daemons_move_within_the_deadline_and_lose_nothing(
        master_key, write_policies, tmp_path):
    """The primary is frozen (SIGSTOP on every server process, walsender included: a partition, as the
    clients see it) and the standby promoted half a second later, as a failover manager that noticed
    first would. Nothing closes the daemons' connections: only their round-trip deadline
    (database_timeout) gets them off the frozen primary, and every reconnect tries it first (the URL's
    order), which costs a connect_timeout (a third of database_timeout, at least 2 s) before libpq goes
    on to the standby. So the first delivery through the new primary comes within database_timeout plus
    that connect_timeout (plus the first reconnect backoff, 100 ms) of the freeze."""
    timeout_s, connect_timeout_s = 3, 2
    run = FailoverRun(master_key, write_policies, tmp_path, database_timeout=f"{timeout_s}s")
    frozen = []
    try:
        at_freeze = run.start()
        frozen_at = time.time()
        freeze(run.cluster.nodes["primary"]["data"], frozen)
        time.sleep(0.5)
        promoted_at, delivered_at_promotion = run.promote()
        noticed = {}  # daemon -> when its log first said the database did not answer
        first_write = []  # when a delivery was first recorded on the new primary

        def moved():
            for d in run.daemons:
                if d.name not in noticed and "no answer from the database within" in d.log():
                    noticed[d.name] = time.time()
            if not first_write and run.delivered() > delivered_at_promotion:
                first_write.append(time.time())
            return len(noticed) == len(run.daemons) and first_write

        wait_for(moved, timeout=timeout_s + connect_timeout_s + 20, interval=0.01,
                 what="both daemons to give up on the frozen primary and deliver through the new one")
        detected_s = max(noticed.values()) - frozen_at
        freeze_to_first_write_s = first_write[0] - frozen_at
        duplicated, expired, elapsed = run.finish()
        summary("failover_frozen", receiver=run.hook.kind, deliveries=run.n,
                delivered_at_freeze=at_freeze.get("delivered", 0), delivering_at_freeze=at_freeze.get("delivering", 0),
                database_timeout_s=timeout_s, freeze_to_promoted_s=round(promoted_at - frozen_at, 2),
                freeze_to_both_detected_s=round(detected_s, 2),
                freeze_to_first_recorded_delivery_s=round(freeze_to_first_write_s, 2),
                freeze_to_first_new_request_s=run.first_request_after(frozen_at),
                duplicates=len(duplicated), extra_requests=sum(c - 1 for c in duplicated.values()),
                lease_expired_deliveries=len(expired), seconds=round(elapsed, 1))
        # A round trip that began just before the freeze is cut at database_timeout; the log line is
        # written at once (the poll above and the log's flush: well under a second).
        assert detected_s <= timeout_s + 1.0, f"noticed the frozen primary {detected_s:.2f} s after the freeze"
        bound = timeout_s + connect_timeout_s + 1.5
        assert freeze_to_first_write_s <= bound, (
            f"first delivery through the new primary {freeze_to_first_write_s:.2f} s after the freeze "
            f"(database_timeout {timeout_s} s + connect_timeout {connect_timeout_s} s + 1.5 s: {bound} s)")
    finally:
        # The old primary is fenced: killed while stopped, never thawed into a second primary (the URL
        # lists it first, so a daemon reconnecting would write to it).
        thaw(frozen, kill=True)
        run.close()


def test_terminating_the_daemons_backends_repeatedly_loses_nothing_and_it_is_back_within_a_second(
        db, db_url, master_key, create_subscription, write_policies, tmp_path):
    seed = int(os.environ.get("PGCOURIER_CHAOS_SEED", str(int(time.time()))))
    rng = random.Random(seed)
    hook = fast_receiver(str(tmp_path))
    create_subscription(hook.url())
    app = "pgcourierd-chaos"
    policies = write_policies({"default": policy(max_attempts=10, base="50ms", cap="500ms", connect="500ms",
                                                 request="1s")})
    daemon = Daemon(f"{db_url}?application_name={app}", master_key, str(tmp_path), "t1",
                    dict(policies_file=policies, lease_duration="3s", rescue_interval="200ms", poll_interval="200ms"))
    stop_producing = threading.Event()
    produced = [0]
    producer_errors = []

    def produce():
        # Its own connection, under its own name, so the terminator leaves it alone.
        conn = psycopg2.connect(db_url, application_name="chaos-producer")
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                while not stop_producing.is_set():
                    cur.execute("INSERT INTO courier.events (tenant_id, event_type, payload) "
                                "SELECT 'acme', 'chaos.terminate', jsonb_build_object('n', g) "
                                "FROM generate_series(1, 50) g")
                    produced[0] += 50
                    time.sleep(0.05)
        except Exception as e:  # reported by the test, not lost in a thread
            producer_errors.append(repr(e))
        finally:
            conn.close()

    producer = threading.Thread(target=produce, daemon=True)
    try:
        daemon.start()
        # Warm up until the daemon holds every connection it keeps (the session and the outcome writer).
        db.query("INSERT INTO courier.events (tenant_id, event_type, payload) "
                 "SELECT 'acme', 'chaos.warmup', '{}'::jsonb FROM generate_series(1, 200)")
        wait_for(lambda: db.value("SELECT count(*) FROM courier.deliveries WHERE status = 'delivered'") == 200,
                 timeout=30, what="the warm-up deliveries")
        baseline = len(backends(db, app))
        assert baseline >= 2, f"expected the daemon's session and writer connections, found {baseline}"

        started = time.monotonic()
        producer.start()
        back_after = []      # seconds from each termination until the daemon had as many connections again
        terminated = 0
        not_back = 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            killed = terminate_backends(db, app)
            killed_at = time.monotonic()
            terminated += len(killed)

            def reconnected():
                return len(backends(db, app) - killed) >= baseline

            while not reconnected() and time.monotonic() - killed_at < 5:
                time.sleep(0.005)
            if reconnected():
                back_after.append(time.monotonic() - killed_at)
            else:
                not_back += 1
            time.sleep(rng.uniform(0.05, 0.3))
        kills = len(back_after) + not_back
        stop_producing.set()
        producer.join(timeout=10)
        assert not producer_errors, producer_errors
        n = 200 + produced[0]

        wait_for(lambda: db.value("SELECT count(*) FROM courier.deliveries WHERE status <> 'delivered'") == 0,
                 timeout=60, interval=0.2, what=f"all {n} deliveries delivered")
        elapsed = time.monotonic() - started
        time.sleep(0.5)
        assert db.value("SELECT count(*) FROM courier.deliveries") == n
        duplicated, expired = check_nothing_lost(db, hook.hits(), n)
        assert daemon.proc.poll() is None, f"pgcourierd exited with {daemon.proc.returncode}:\n{daemon.log()[-3000:]}"
        summary("backend_kill", receiver=hook.kind, deliveries=n, seed=seed, kills=kills,
                backends_terminated=terminated, baseline_connections=baseline,
                back_median_ms=round(1000 * percentile(back_after, 0.5)) if back_after else None,
                back_p90_ms=round(1000 * percentile(back_after, 0.9)) if back_after else None,
                back_max_ms=round(1000 * max(back_after)) if back_after else None,
                not_back_within_5s=not_back, duplicates=len(duplicated), lease_expired_deliveries=len(expired),
                seconds=round(elapsed, 1))
        assert 20 <= kills <= 50, kills
        assert not_back == 0, f"{not_back} of {kills} times the daemon did not reconnect within 5 s"
        assert max(back_after) < 1.0, f"slowest reconnection {max(back_after):.3f} s: {sorted(back_after)[-5:]}"
    finally:
        stop_producing.set()
        daemon.stop()
        hook.stop()
        reports = daemon.sanitizer_reports()
        assert not reports, f"sanitizer reports in the daemon's log: {reports[:20]}"
