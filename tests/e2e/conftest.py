"""Fixtures for end-to-end tests: real pgcourierd processes, a real PostgreSQL
(a fresh database per test, cloned from a migrated template) and real HTTP
receivers on 127.0.0.1.

tests/run starts the cluster and exports PGCOURIER_TEST_ADMIN_URL and
PGCOURIER_TEST_TEMPLATE; run alone (python3 -m pytest tests/e2e), this file
starts its own cluster with tools/pg-local.
"""
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid

import psycopg2
import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from receiver import Receiver  # noqa: E402

BUILD_DIR = os.environ.get("PGCOURIER_BUILD_DIR", os.path.join(ROOT, "build"))
# pgcourierctl reads /etc/pgcourier/pgcourierd.yaml and its policies file when they exist; the tests must not
# depend on this machine's: no settings file, and no policies file (URLs are then checked for syntax only, with
# a warning). Tests that check URLs against a policy pass --policies.
os.environ["PGCOURIER_CONFIG"] = ""
os.environ["PGCOURIER_POLICIES_FILE"] = ""
PGCOURIERD = os.path.join(BUILD_DIR, "pgcourierd")
PGCOURIERCTL = os.path.join(BUILD_DIR, "pgcourierctl")
LOCAL_POLICIES = os.path.join(ROOT, "policies", "local.yaml")


def wait_for(predicate, timeout=15.0, interval=0.05, what="condition"):
    """Polls predicate until it returns a truthy value; fails the test after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@pytest.fixture(scope="session")
def pg_admin_url():
    url = os.environ.get("PGCOURIER_TEST_ADMIN_URL")
    if url:
        yield url
        return
    tmp = tempfile.mkdtemp(prefix="pgcourier-e2e-")
    os.chmod(tmp, 0o755)
    pgdir = os.path.join(tmp, "pg")
    url = subprocess.check_output([os.path.join(ROOT, "tools", "pg-local"), "start", pgdir, "--fast"],
                                  env={**os.environ, "PGLOCAL_DB": "postgres"}, text=True).strip()
    conn = psycopg2.connect(url)
    conn.autocommit = True
    conn.cursor().execute("CREATE DATABASE courier_template")
    conn.close()
    subprocess.check_call([PGCOURIERCTL, "migrate"], env={**os.environ, "DATABASE_URL": url.rsplit("/", 1)[0] + "/courier_template"},
                          stdout=subprocess.DEVNULL)
    os.environ["PGCOURIER_TEST_TEMPLATE"] = "courier_template"
    os.environ["PGCOURIER_TEST_PGDIR"] = pgdir
    yield url
    subprocess.call([os.path.join(ROOT, "tools", "pg-local"), "destroy", pgdir])


@pytest.fixture
def db_url(pg_admin_url):
    """A fresh, migrated database for one test, dropped afterwards."""
    name = "e2e_" + uuid.uuid4().hex[:12]
    template = os.environ.get("PGCOURIER_TEST_TEMPLATE", "courier_template")
    admin = psycopg2.connect(pg_admin_url)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    admin.close()
    yield pg_admin_url.rsplit("/", 1)[0] + "/" + name
    # A new connection: a test may have restarted the server meanwhile.
    admin = psycopg2.connect(pg_admin_url)
    admin.autocommit = True
    admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


class Database:
    """Small SQL helper over psycopg2 (autocommit)."""

    def __init__(self, url):
        self.url = url
        self.conn = psycopg2.connect(url)
        self.conn.autocommit = True

    def query(self, sql, *args):
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall() if cur.description else []

    def value(self, sql, *args):
        rows = self.query(sql, *args)
        return rows[0][0] if rows else None

    def publish(self, tenant, event_type, payload="{}", idempotency_key=None, trace_id=None):
        return self.value("SELECT courier.publish(%s, %s, %s::jsonb, %s, %s)",
                          tenant, event_type, payload, idempotency_key, trace_id)

    def rows(self, sql, *args):
        """All rows as dicts (column name -> value)."""
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            names = [c.name for c in cur.description]
            return [dict(zip(names, row)) for row in cur.fetchall()]

    def delivery(self, event_id, subscription_id=None):
        """The delivery of an event (for one subscription when given), as a dict: its row, with the
        status and lease an operator sees (courier.delivery_status: 'delivering' while leased)."""
        sql = ("SELECT d.*, v.status, v.next_attempt_at, v.lease_owner, v.lease_expires_at "
               "FROM courier.deliveries d JOIN courier.delivery_status v USING (id) WHERE d.event_id = %s")
        args = [event_id]
        if subscription_id is not None:
            sql += " AND d.subscription_id = %s"
            args.append(subscription_id)
        rows = self.rows(sql, *args)
        assert len(rows) == 1, f"expected one delivery for {event_id}/{subscription_id}, found {len(rows)}"
        return rows[0]

    def attempts(self, delivery_id):
        """The attempt rows of a delivery, as dicts, in attempt order."""
        return self.rows("SELECT * FROM courier.delivery_attempts WHERE delivery_id = %s ORDER BY attempt",
                         delivery_id)

    def unchecked(self, sql, *args):
        """Runs sql with the triggers of ordinary writers off (session_replication_role = replica; the tests
        connect as a superuser): for rows the checks of sql/schema/50_management.sql would refuse, as if
        written before they existed, to test what the daemon does with them."""
        with self.conn.cursor() as cur:
            cur.execute("SET session_replication_role = replica")
            try:
                cur.execute(sql, args)
                return cur.fetchall() if cur.description else []
            finally:
                cur.execute("RESET session_replication_role")

    def statuses(self):
        return dict(self.query("SELECT status, count(*) FROM courier.delivery_status GROUP BY status"))

    def close(self):
        self.conn.close()


@pytest.fixture
def db(db_url):
    database = Database(db_url)
    yield database
    database.close()


@pytest.fixture
def master_key(tmp_path):
    path = tmp_path / "master.key"
    subprocess.check_call([PGCOURIERCTL, "keygen", "--out", str(path)], stdout=subprocess.DEVNULL)
    return str(path)


@pytest.fixture
def ctl(db_url, master_key):
    """Runs pgcourierctl against the test database; returns CompletedProcess."""
    def run(*args, check=True):
        env = {**os.environ, "DATABASE_URL": db_url, "PGCOURIER_MASTER_KEY_FILE": master_key}
        result = subprocess.run([PGCOURIERCTL, *args], env=env, capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            pytest.fail(f"pgcourierctl {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result
    return run


@pytest.fixture
def create_subscription(ctl):
    """create_subscription(url, events='*', tenant='acme', policy='default') -> (id, secret)"""
    def create(url, events="*", tenant="acme", policy="default"):
        out = ctl("subscription", "create", "--tenant", tenant, "--url", url, "--events", events,
                  "--policy", policy).stdout
        sub_id = next(line.split()[-1] for line in out.splitlines() if line.startswith("created subscription"))
        secret = next(line.split()[-1] for line in out.splitlines() if "signing secret" in line)
        return sub_id, secret
    return create


def _yaml(value, indent=0):
    """A tiny YAML emitter for nested dicts of scalars and flow lists (policies files)."""
    pad = "  " * indent
    lines = []
    for key, v in value.items():
        if isinstance(v, dict):
            lines.append(f"{pad}{key}:")
            lines.append(_yaml(v, indent + 1))
        elif isinstance(v, list):
            items = ", ".join(f'"{x}"' if isinstance(x, str) else str(x) for x in v)
            lines.append(f"{pad}{key}: [{items}]")
        elif isinstance(v, bool):
            lines.append(f"{pad}{key}: {'true' if v else 'false'}")
        else:
            lines.append(f"{pad}{key}: {v}")
    return "\n".join(lines)


def policy(max_attempts=3, base="100ms", factor=2.0, cap="2s", jitter=0.1, connect="1s", request="2s",
           retryable_statuses=(408, 425, 429, "5xx"), local_endpoints=True, integration=None, **sections):
    """One policy as a dict for write_policies (durations written with units, as in policies/default.yaml).
    local_endpoints allows plain http to 127.0.0.0/8 (the test receivers); integration, when given, is
    the policy's integration-run block (health_check_interval, unhealthy_after, run_when_degraded,
    max_rate_limited_waits, token_refresh_margin); extra sections (limits, circuit_breaker, auto_pause,
    endpoint) are passed through."""
    out = {"max_attempts": max_attempts,
           "backoff": {"base": base, "factor": factor, "cap": cap, "jitter": jitter},
           "timeouts": {"connect": connect, "request": request},
           "retryable_statuses": list(retryable_statuses)}
    if local_endpoints:
        out["endpoint"] = {"require_https": False, "allow_cidrs": ["127.0.0.0/8"]}
    if integration is not None:
        out["integration"] = integration
    out.update(sections)
    return out


@pytest.fixture
def write_policies(tmp_path):
    """write_policies({'default': policy(...), ...}, name='policies.yaml') -> path of a policies file."""
    def write(policies, name="policies.yaml"):
        path = tmp_path / name
        path.write_text(_yaml({"policies": policies}) + "\n")
        return str(path)
    return write


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture
def make_receiver():
    """make_receiver() -> another started Receiver on its own port; all are stopped after the test.
    Requests to different receivers go to different host:port pairs, so they share no connection."""
    made = []

    def make():
        r = Receiver().start()
        made.append(r)
        return r
    yield make
    for r in made:
        r.stop()


class Daemon:
    """A pgcourierd process; logs go to a file readable with .log()."""

    def __init__(self, db_url, master_key, workdir, name, settings):
        self.name = name
        self.config_path = os.path.join(workdir, f"{name}.yaml")
        self.log_path = os.path.join(workdir, f"{name}.log")
        lines = [f"worker_id: {name}", f"policies_file: {settings.pop('policies_file', LOCAL_POLICIES)}",
                 "metrics_address: ''"]
        lines += [f"{k}: {v}" for k, v in settings.items()]
        with open(self.config_path, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.env = {**os.environ, "DATABASE_URL": db_url, "PGCOURIER_MASTER_KEY_FILE": master_key}
        self.proc = None

    def start(self, wait_ready=True):
        self.log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen([PGCOURIERD, "--config", self.config_path], env=self.env,
                                     stdout=self.log_file, stderr=subprocess.STDOUT)
        if wait_ready:
            wait_for(lambda: "ready" in self.log() or self.proc.poll() is not None, timeout=15,
                     what=f"{self.name} to become ready")
            if self.proc.poll() is not None:
                pytest.fail(f"{self.name} exited with {self.proc.returncode}:\n{self.log()}")
        return self

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=30):
        return self.proc.wait(timeout=timeout)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log_file.close()

    SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "WARNING: ThreadSanitizer",
                         "runtime error:")

    def sanitizer_reports(self):
        """Lines of a sanitizer build's reports in this daemon's log (empty for normal builds)."""
        if not os.path.exists(self.log_path):
            return []
        return [line for line in self.log().splitlines() if any(m in line for m in self.SANITIZER_MARKERS)]


@pytest.fixture
def daemon_factory(db_url, master_key, tmp_path):
    """daemon_factory(name='d1', **settings) -> started Daemon; all are stopped after the test."""
    daemons = []

    def make(name="d1", start=True, **settings):
        d = Daemon(db_url, master_key, str(tmp_path), name, settings)
        daemons.append(d)
        return d.start() if start else d
    yield make
    for d in daemons:
        d.stop()
    # Sanitizer builds (make test-sanitize) report into the daemon's stderr.
    reports = [(d.name, line) for d in daemons for line in d.sanitizer_reports()]
    if reports:
        pytest.fail("sanitizer reports in daemon logs:\n" + "\n".join(f"{n}: {l}" for n, l in reports[:20]))


@pytest.fixture
def make_scripted_receiver():
    """make_scripted_receiver(respond=None) -> a started ScriptedReceiver (tests/e2e/scripted_receiver.py):
    answers chosen per request, arrival order, payloads and concurrency recorded. Stopped after the test."""
    from scripted_receiver import ScriptedReceiver
    made = []

    def make(respond=None):
        r = ScriptedReceiver(respond).start()
        made.append(r)
        return r
    yield make
    for r in made:
        r.stop()


@pytest.fixture
def make_vendor():
    """make_vendor(**kwargs) -> a started Vendor (tests/e2e/vendor.py): a fake third-party API with
    scripted answers, static or OAuth2 authentication and a request log. Stopped after the test."""
    from vendor import Vendor
    made = []

    def make(**kwargs):
        v = Vendor(**kwargs).start()
        made.append(v)
        return v
    yield make
    for v in made:
        v.stop()


PGCOURIER_GATEWAY = os.path.join(BUILD_DIR, "pgcourier-gateway")
PG_LOCAL = os.path.join(ROOT, "tools", "pg-local")


class Cluster:
    """A throwaway cluster of tools/pg-local in `folder`, reached at `url`; stop() and start() keep its port."""

    def __init__(self, folder):
        self.folder = folder
        self.url = self.start()

    def start(self):
        return subprocess.check_output([PG_LOCAL, "start", self.folder, "--fast"], text=True).strip()

    def stop(self):
        subprocess.check_call([PG_LOCAL, "stop", self.folder])


@pytest.fixture
def second_pg():
    """A second throwaway cluster (its own port), migrated: a Cluster (tests of shards)."""
    folder = tempfile.mkdtemp(prefix="pgcourier-shard2-")
    os.chmod(folder, 0o755)
    cluster = Cluster(folder)
    subprocess.check_call([PGCOURIERCTL, "migrate"], env={**os.environ, "DATABASE_URL": cluster.url},
                          stdout=subprocess.DEVNULL)
    yield cluster
    subprocess.call([PG_LOCAL, "destroy", folder], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture
def second_cluster(second_pg):
    """The second cluster's URL."""
    return second_pg.url


def free_port():
    """A port the kernel just handed out for a listening socket (bind port 0), closed again for the caller."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gateway:
    """A pgcourier-gateway process on a free port; .call() makes one HTTP request and returns
    (status, headers, parsed JSON or text)."""

    def __init__(self, db_url, master_key, workdir, name, args, env=None):
        self.name = name
        self.log_path = os.path.join(workdir, f"{name}.log")
        self.db_url = db_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = ["--listen", f"127.0.0.1:{self.port}", *args]
        self.env = {**os.environ, "DATABASE_URL": db_url, "PGCOURIER_MASTER_KEY_FILE": master_key, **(env or {})}
        self.proc = None

    def start(self):
        self.log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen([PGCOURIER_GATEWAY, *self.args], env=self.env, stdout=self.log_file,
                                     stderr=subprocess.STDOUT)
        wait_for(lambda: "listening on" in self.log() or self.proc.poll() is not None, timeout=15,
                 what=f"{self.name} to listen")
        if self.proc.poll() is not None:
            pytest.fail(f"{self.name} exited with {self.proc.returncode}:\n{self.log()}")
        return self

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def call(self, method, path, body=None, token=None, headers=None, raw=None, timeout=15):
        import http.client
        import json as _json
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else (None if body is None else _json.dumps(body).encode())
        if data is not None:
            h.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=data, headers=h)
        resp = conn.getresponse()
        text = resp.read().decode("utf-8", "replace")
        conn.close()
        ctype = resp.getheader("Content-Type", "")
        value = _json.loads(text) if "json" in ctype and text else text
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, value

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log_file.close()


@pytest.fixture
def gateway_factory(db_url, master_key, tmp_path):
    """gateway_factory(*args, name='gw1', env=None, start=True) -> a Gateway; all are stopped after the test."""
    made = []

    def make(*args, name="gw1", env=None, start=True, url=None):
        g = Gateway(url or db_url, master_key, str(tmp_path), name, list(args), env)
        made.append(g)
        return g.start() if start else g
    yield make
    for g in made:
        g.stop()


@pytest.fixture
def gateway(gateway_factory):
    return gateway_factory()


@pytest.fixture
def api_token(ctl):
    """api_token(tenant='acme') -> a new token for the tenant; api_token(None) -> an operator token."""
    def make(tenant="acme", name="test"):
        args = ["--tenant", tenant] if tenant else ["--operator"]
        out = ctl("api-token", "create", *args, "--name", name, "--json").stdout
        import json as _json
        return _json.loads(out)["token"]
    return make


def wait_feed_settled(db, timeout=30.0):
    """The change feed and the exports show an event once every transaction older than it has ended
    on the whole cluster (pg_snapshot_xmin is shared by every database): a transaction open in
    another test's database (tests/run runs several at once) holds them back. Waits until every event
    of db is behind that horizon."""
    wait_for(lambda: db.value("SELECT coalesce(max(feed_xid), '0'::xid8) < pg_snapshot_xmin(pg_current_snapshot()) "
                              "FROM courier.events"), timeout=timeout, what="the change feed to show every event")


def pytest_configure(config):
    config.addinivalue_line("markers", "serial: stops or restarts the shared PostgreSQL cluster; tests/run runs "
                                       "these alone, after the others")
