"""Chaos: the database's clock steps (libfaketime on the server: every server process reads the wall
clock through it, from a file the test rewrites). Leases and schedules are the database's time, so a
forward step makes every live lease look expired: the maintenance leader notices the step and takes no
lease back for one lease_duration, within which the daemons holding them renew them. Nothing is sent
twice. A backward step is logged (leases and retries then last longer, by the step)."""
import os
import subprocess
import tempfile
import time

import pytest

from chaos_helpers import lease_expired_events, summary
from conftest import PGCOURIERCTL, ROOT, Daemon, Database, wait_for

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


N = 1500  # 1.5 s each, 128 at a time: about 18 s of work, the step lands in the middle


def test_a_forward_step_of_the_database_clock_sends_nothing_twice(faked_cluster, master_key, make_receiver, tmp_path):
    url, set_offset = faked_cluster
    db = Database(url)
    daemons = []
    try:
        before = db.value("SELECT extract(epoch FROM now())")
        set_offset("+10m")
        stepped = db.value("SELECT extract(epoch FROM now())")
        assert stepped - before > 590, "libfaketime does not reach the server: the test would prove nothing"
        set_offset("+0")

        receiver = make_receiver()
        out = subprocess.run([PGCOURIERCTL, "subscription", "create", "--tenant", "acme", "--url",
                              receiver.url("/hang/1.5"), "--events", "*"], capture_output=True, text=True,
                             env={**os.environ, "DATABASE_URL": url, "PGCOURIER_MASTER_KEY_FILE": master_key})
        assert out.returncode == 0, out.stderr
        settings = dict(lease_duration="3s", rescue_interval="200ms", poll_interval="200ms", concurrency=64)
        for name in ("c1", "c2"):
            daemons.append(Daemon(url, master_key, str(tmp_path), name, dict(settings)).start())
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

        hits = {}
        for h in receiver.hits:
            hits[h["headers"]["webhook-id"]] = hits.get(h["headers"]["webhook-id"], 0) + 1
        duplicated = sorted(e for e, c in hits.items() if c > 1)
        rescued = lease_expired_events(db)
        summary("clock_step", deliveries=N, duplicates=len(duplicated), rescued=len(rescued))
        assert len(hits) == N
        assert not duplicated, f"{len(duplicated)} event(s) sent twice after the step, e.g. {duplicated[:3]}"
        assert not rescued, f"{len(rescued)} live lease(s) taken back after the step"
        for d in daemons:
            assert d.proc.poll() is None, d.log()[-2000:]
    finally:
        for d in daemons:
            d.stop()
        db.close()
