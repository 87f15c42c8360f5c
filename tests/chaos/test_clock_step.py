"""Chaos: the database's clock steps (libfaketime on the server: every server process reads the wall
clock through it, from a file the test rewrites). Leases and schedules are the database's time.

What a step of either sign does now (the maintenance leader compares the database's clock with its own
steady clock once per rescue_interval; a step is a change of more than half a lease, at least 2 s):
  * forward by S: every live lease looks expired and every retry due within S is due at once. The
    leader takes no lease back for one lease_duration after it sees the step, within which the daemons
    holding them renew them (a third of a lease), so nothing is sent twice; the retries go early.
  * backward by S: every due time and lease written before the step lies S later on the new clock (a
    backlog would wait S, -1 h delayed 709 deliveries by 59 minutes before). The leader moves them back
    by S, once, in batches of 1,000 rows (shift_schedules.sql, shift_run_schedules.sql): due times of
    rows written after the new now() (so never a row written since the step), leases expiring more than
    two lease_durations ahead. Not recognised, and so not moved: rows written more than S before the
    step (they become due within their own delay of it) and old-clock leases within two leases of now
    (rescued at most that late). A step seen by a leader that loses its leadership before the pass ends
    leaves the rest unmoved; created times (the FIFO order between old and new rows) are not moved.
"""
import contextlib
import os
import re
import subprocess
import tempfile
import time

import pytest

from chaos_helpers import lease_expired_events, summary
from conftest import PGCOURIERCTL, ROOT, Daemon, Database, policy, wait_for

FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
PG_LOCAL = os.path.join(ROOT, "tools", "pg-local")
pytestmark = pytest.mark.skipif(not os.path.exists(FAKETIME), reason="libfaketime not installed (make deps)")


@pytest.fixture
def faked_cluster():
    """A throwaway cluster whose server processes read their wall clock through libfaketime; yields
    (url, set_offset) where set_offset("+1h") steps the server's clock."""
    folder = tempfile.mkdtemp(prefix="pgcourier-faketime-")
    os.chmod(folder, 0o755)
    offset_file = os.path.join(folder, "faketime.rc")
    with open(offset_file, "w") as f:
        f.write("+0\n")
    os.chmod(offset_file, 0o644)
    env = {**os.environ, "LD_PRELOAD": FAKETIME, "FAKETIME_TIMESTAMP_FILE": offset_file, "FAKETIME_NO_CACHE": "1",
           "FAKETIME_DONT_FAKE_MONOTONIC": "1", "PGLOCAL_DB": "pgcourier"}
    url = subprocess.check_output([PG_LOCAL, "start", folder, "--fast"], text=True, env=env).strip()
    subprocess.check_call([PGCOURIERCTL, "migrate"], env={**os.environ, "DATABASE_URL": url}, stdout=subprocess.DEVNULL)

    def set_offset(offset):
        with open(offset_file + ".new", "w") as f:
            f.write(offset + "\n")
        os.chmod(offset_file + ".new", 0o644)
        os.replace(offset_file + ".new", offset_file)
    yield url, set_offset
    subprocess.call([PG_LOCAL, "destroy", folder], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def subscribe(url, master_key, hook_url):
    out = subprocess.run([PGCOURIERCTL, "subscription", "create", "--tenant", "acme", "--url", hook_url,
                          "--events", "*"], capture_output=True, text=True,
                         env={**os.environ, "DATABASE_URL": url, "PGCOURIER_MASTER_KEY_FILE": master_key})
    assert out.returncode == 0, out.stderr


@contextlib.contextmanager
def daemons_on(url, master_key, tmp_path, names, settings):
    """A started daemon per name; on the way out, checks that none exited meanwhile, and stops them."""
    daemons = []
    try:
        for name in names:
            daemons.append(Daemon(url, master_key, str(tmp_path), name, dict(settings)).start())
        yield daemons
        for d in daemons:
            assert d.proc.poll() is None, d.log()[-2000:]
    finally:
        for d in daemons:
            d.stop()


def hits_by_event(hits):
    counts = {}
    for h in hits:
        counts[h["headers"]["webhook-id"]] = counts.get(h["headers"]["webhook-id"], 0) + 1
    return counts


def check_the_clock_reaches_the_server(db, set_offset):
    before = db.value("SELECT extract(epoch FROM now())")
    set_offset("+10m")
    stepped = db.value("SELECT extract(epoch FROM now())")
    assert stepped - before > 590, "libfaketime does not reach the server: the test would prove nothing"
    set_offset("+0")


N = 1500  # 1.5 s each, 128 at a time: about 18 s of work, the step lands in the middle


def test_a_forward_step_of_the_database_clock_sends_nothing_twice(faked_cluster, master_key, make_receiver, tmp_path):
    url, set_offset = faked_cluster
    db = Database(url)
    check_the_clock_reaches_the_server(db, set_offset)
    receiver = make_receiver()
    subscribe(url, master_key, receiver.url("/hang/1.5"))
    settings = dict(lease_duration="3s", rescue_interval="200ms", poll_interval="200ms", concurrency=64)
    with contextlib.closing(db), daemons_on(url, master_key, tmp_path, ("c1", "c2"), settings) as daemons:
        started = time.monotonic()
        db.query("INSERT INTO courier.events (tenant_id, event_type, payload) "
                 "SELECT 'acme', 'clock.step', jsonb_build_object('n', g) FROM generate_series(1, %s) g", N)
        # After a (re)connect the leader rescues nothing for a lease plus 5 s (an outage's grace): step the
        # clock only once that is over, so the rescue is live when the leases look expired.
        time.sleep(max(0.0, 3 + 5 + 1 - (time.monotonic() - started)))
        assert db.value("SELECT count(*) FROM courier.delivery_queue WHERE lease_owner IS NOT NULL") >= 64

        set_offset("+1h")  # every lease now looks an hour past its expiry
        wait_for(lambda: any("database clock jumped forward" in d.log() for d in daemons), timeout=10,
                 what="the leader to notice the step")
        wait_for(lambda: db.statuses() == {"delivered": N}, timeout=120, interval=0.2, what=f"all {N} delivered")

        set_offset("+0")  # and back: a backward step of an hour
        wait_for(lambda: any("database clock jumped back" in d.log() for d in daemons), timeout=10,
                 what="the leader to notice the backward step")

        hits = hits_by_event(receiver.hits)
        duplicated = sorted(e for e, c in hits.items() if c > 1)
        rescued = lease_expired_events(db)
        summary("clock_step", deliveries=N, duplicates=len(duplicated), rescued=len(rescued))
        assert len(hits) == N
        assert not duplicated, f"{len(duplicated)} event(s) sent twice after the step, e.g. {duplicated[:3]}"
        assert not rescued, f"{len(rescued)} live lease(s) taken back after the step"


def test_a_backward_step_of_the_database_clock_delays_nothing_by_the_step(
        faked_cluster, master_key, make_receiver, write_policies, tmp_path):
    """-1 h on the database clock in the middle of a run: a backlog of first attempts (due at their
    creation, an hour ahead of the new clock), retries scheduled 10 s out on the old clock, leases in
    flight. Without the leader's shift the backlog and the retries wait an hour; with it everything is
    delivered within a minute of the step, once each (the flaky endpoint's first answer is a 500: twice
    there, by design), and no live lease is taken back."""
    url, set_offset = faked_cluster
    db = Database(url)
    n = 600
    check_the_clock_reaches_the_server(db, set_offset)
    slow, flaky = make_receiver(), make_receiver()
    subscribe(url, master_key, slow.url("/hang/1.5"))  # 600 x 1.5 s at 128 at a time: about 7 s of work
    subscribe(url, master_key, flaky.url("/flaky/1"))   # a 500, then a retry 10 s later: 200
    policies = write_policies({"default": policy(max_attempts=5, base="10s", cap="10s", jitter=0, connect="1s",
                                                 request="2s")})
    settings = dict(policies_file=policies, lease_duration="3s", rescue_interval="200ms", poll_interval="200ms",
                    concurrency=64)
    with contextlib.closing(db), daemons_on(url, master_key, tmp_path, ("b1", "b2"), settings) as daemons:
        db.query("INSERT INTO courier.events (tenant_id, event_type, payload) "
                 "SELECT 'acme', 'clock.step', jsonb_build_object('n', g) FROM generate_series(1, %s) g", n)
        wait_for(lambda: db.value("SELECT count(*) FROM courier.deliveries WHERE status = 'retry_scheduled'") >= n // 2,
                 timeout=30, interval=0.05, what="half of the flaky deliveries scheduled for a retry")
        before = {
            "backlog": db.value("SELECT count(*) FROM courier.delivery_queue WHERE lease_owner IS NULL AND NOT retry"),
            "retries": db.value("SELECT count(*) FROM courier.delivery_queue WHERE lease_owner IS NULL AND retry"),
            "leased": db.value("SELECT count(*) FROM courier.delivery_queue WHERE lease_owner IS NOT NULL")}
        assert before["backlog"] >= 100 and before["retries"] >= n // 4, before  # the step lands mid-run

        set_offset("-1h")
        stepped_at = time.time()
        wait_for(lambda: any("database clock jumped back" in d.log() for d in daemons), timeout=10,
                 what="the leader to notice the step back")
        wait_for(lambda: db.statuses() == {"delivered": 2 * n}, timeout=60, interval=0.2,
                 what=f"all {2 * n} deliveries delivered within a minute of the step (not an hour)")
        done_s = time.time() - stepped_at
        last_s = max(h["arrived_at"] for h in slow.hits + flaky.hits) - stepped_at

        slow_hits, flaky_hits = hits_by_event(slow.hits), hits_by_event(flaky.hits)
        events = {r[0] for r in db.query("SELECT id FROM courier.events")}
        assert set(slow_hits) == events and set(flaky_hits) == events, "an event missed an endpoint"
        assert sorted(e for e, c in slow_hits.items() if c != 1) == [], "sent twice to the slow endpoint"
        assert sorted(e for e, c in flaky_hits.items() if c != 2) == [], "not exactly a 500 then a 200"
        doubly = db.query("SELECT delivery_id FROM courier.delivery_attempts WHERE outcome = 'delivered' "
                          "GROUP BY delivery_id HAVING count(*) <> 1")
        assert not doubly, doubly[:5]
        rescued = lease_expired_events(db)
        assert not rescued, f"{len(rescued)} lease(s) taken back after the step"
        log = "".join(d.log() for d in daemons)
        moved = [int(m) for m in re.findall(
            r"deliveries: moved back by \d+ ms \(the database clock's jump back\): (\d+) due time", log)]
        assert moved and moved[0] > 0, log[-3000:]
        summary("clock_step_back", deliveries=2 * n, backlog_at_step=before["backlog"],
                retries_at_step=before["retries"], leased_at_step=before["leased"], due_times_moved=moved[0],
                step_to_all_delivered_s=round(done_s, 1), step_to_last_request_s=round(last_s, 1),
                rescued=len(rescued))
