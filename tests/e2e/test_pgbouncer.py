"""Through a real pgbouncer (Debian 12's 1.18), in session and in transaction mode: producers publish,
pgcourierctl manages, and pgcourierd delivers through the pooler; in transaction mode its claiming
session (LISTEN, the maintenance lock) goes direct and its outcome writer through the pooler, with
statements unprepared (pgbouncer 1.18 keeps no prepared statement across transactions)."""
import os
import shutil
import socket
import subprocess
import tempfile
import urllib.parse

import psycopg2
import pytest

from conftest import PGCOURIERCTL, PGCOURIERD, Daemon, wait_for

PGBOUNCER = "/usr/sbin/pgbouncer"
pytestmark = pytest.mark.skipif(not os.path.exists(PGBOUNCER), reason="pgbouncer not installed (make deps)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Bouncer:
    """A pgbouncer on 127.0.0.1 in front of the test cluster, run as 'postgres' when we are root
    (pgbouncer refuses to run as root), in a folder of its own."""

    def __init__(self, db_url, mode):
        target = urllib.parse.urlsplit(db_url)
        # Not under pytest's tmp_path: its folders are private to root, and pgbouncer runs as postgres.
        self.dir = tempfile.mkdtemp(prefix=f"pgcourier-pgbouncer-{mode}-")
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        with open(os.path.join(self.dir, "userlist.txt"), "w") as f:
            f.write('"postgres" ""\n')
        with open(os.path.join(self.dir, "pgbouncer.ini"), "w") as f:
            f.write(f"""[databases]
* = host=127.0.0.1 port={target.port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {self.dir}/userlist.txt
admin_users = postgres
pool_mode = {mode}
max_client_conn = 200
default_pool_size = 8
logfile = {self.dir}/pgbouncer.log
pidfile = {self.dir}/pgbouncer.pid
""")
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
            for name in os.listdir(self.dir):
                shutil.chown(os.path.join(self.dir, name), "postgres")
        cmd = [PGBOUNCER, os.path.join(self.dir, "pgbouncer.ini")]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = urllib.parse.urlunsplit(target._replace(netloc=f"{target.username}@127.0.0.1:{self.port}"))
        try:
            wait_for(self.accepts, timeout=10, what="pgbouncer to accept connections")
        except BaseException:
            with open(os.path.join(self.dir, "pgbouncer.log"), errors="replace") as f:
                print(f.read()[-3000:])
            self.stop()
            raise

    def accepts(self):
        try:
            psycopg2.connect(self.url, connect_timeout=2).close()
            return True
        except psycopg2.OperationalError:
            return False

    def show(self, what):
        """SHOW <what> on pgbouncer's admin console, as dicts."""
        conn = psycopg2.connect(self.url.rsplit("/", 1)[0] + "/pgbouncer")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"SHOW {what}")
            names = [c.name for c in cur.description]
            rows = [dict(zip(names, r)) for r in cur.fetchall()]
        conn.close()
        return rows

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_delivery_through_pgbouncer_loses_nothing_and_sends_each_once(
        mode, db, db_url, master_key, make_receiver, tmp_path):
    bouncer = Bouncer(db_url, mode)
    daemons = []
    try:
        receiver = make_receiver()
        env = {**os.environ, "DATABASE_URL": bouncer.url, "PGCOURIER_MASTER_KEY_FILE": master_key}
        # pgcourierctl through the pooler.
        out = subprocess.run([PGCOURIERCTL, "subscription", "create", "--tenant", "acme", "--url",
                              receiver.url("/ok"), "--events", "*"], env=env, capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr

        settings = dict(poll_interval="200ms", rescue_interval="200ms", maintenance_interval="500ms")
        if mode == "transaction":
            settings.update(database_pooler="transaction", database_direct_url=f"'{db_url}'")
        for name in ("b1", "b2"):
            d = Daemon(bouncer.url, master_key, str(tmp_path), f"{mode}-{name}", dict(settings))
            daemons.append(d.start())

        # Producers publish through the pooler, each event in its own transaction, while the daemons run.
        producer = psycopg2.connect(bouncer.url)
        producer.autocommit = True
        events = []
        with producer.cursor() as cur:
            for i in range(300):
                cur.execute("SELECT courier.publish('acme', 'order.created', %s::jsonb)", (f'{{"n": {i}}}',))
                events.append(cur.fetchone()[0])
        producer.close()

        wait_for(lambda: db.statuses() == {"delivered": len(events)}, timeout=60, interval=0.2,
                 what=f"{len(events)} deliveries delivered through pgbouncer ({mode} mode)")
        seen = [h["headers"]["webhook-id"] for h in receiver.hits]
        assert sorted(seen) == sorted(events), "each event exactly once at the receiver"
        doubly = db.query("SELECT delivery_id FROM courier.delivery_attempts WHERE outcome = 'delivered' "
                          "GROUP BY delivery_id HAVING count(*) <> 1")
        assert not doubly, doubly[:5]

        status = subprocess.run([PGCOURIERCTL, "status", "--json"], env=env, capture_output=True, text=True,
                                timeout=60)
        assert status.returncode == 0, status.stderr
        # The daemons' connections really went through the pooler: it counts their transactions.
        stats = {r["database"]: r for r in bouncer.show("STATS")}
        name = urllib.parse.urlsplit(db_url).path.lstrip("/")
        assert stats[name]["total_xact_count"] >= len(events), stats[name]
        for d in daemons:
            log = d.log()
            assert d.proc.poll() is None, log[-3000:]
            assert "prepared statement" not in log, log[-3000:]
            assert " error " not in log, log[-3000:]
    finally:
        for d in daemons:
            d.stop()
        bouncer.stop()


def test_transaction_pooler_without_a_direct_url_is_refused_with_the_reason(tmp_path, master_key):
    config = tmp_path / "pooled.yaml"
    config.write_text("worker_id: p\nmetrics_address: ''\ndatabase_pooler: transaction\n")
    out = subprocess.run([PGCOURIERD, "--config", str(config), "--check-config"], capture_output=True, text=True,
                         env={**os.environ, "PGCOURIER_MASTER_KEY_FILE": master_key}, timeout=30)
    assert out.returncode == 1, out
    assert "database_direct_url" in out.stdout + out.stderr
    assert "transaction" in out.stdout + out.stderr
