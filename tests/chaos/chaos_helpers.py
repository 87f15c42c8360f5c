"""Helpers for the chaos suite: a fast receiver (nginx, or a Python fallback), raw socket servers that
misbehave on purpose, PostgreSQL stop/start/freeze, a primary with a synchronous standby, the daemon's
backends, daemon restarts, and the run summary.

Everything listens on 127.0.0.1 only; every loop here is bounded by a deadline."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from conftest import PGCOURIERCTL, ROOT, Database, wait_for

NGINX = "/usr/sbin/nginx"
PG_LOCAL = os.path.join(ROOT, "tools", "pg-local")


# ---- summary -------------------------------------------------------------------------------------------

def summary(test, **figures):
    """Prints one line of figures (visible with pytest -s) and appends it as JSON to the file named by
    PGCOURIER_CHAOS_SUMMARY (tests/chaos/run prints that file at the end)."""
    line = f"[chaos] {test}: " + ", ".join(f"{k}={v}" for k, v in figures.items())
    print(line, flush=True)
    path = os.environ.get("PGCOURIER_CHAOS_SUMMARY")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"test": test, **figures}) + "\n")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_accepts(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_port(port, timeout=10.0):
    def up():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False
    wait_for(up, timeout=timeout, what=f"something listening on 127.0.0.1:{port}")


def rss_kib(pid):
    """VmRSS of a process in KiB (None when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


# ---- fast receivers ------------------------------------------------------------------------------------

class NginxReceiver:
    """nginx on 127.0.0.1 answering 200 to POST /hook, logging the webhook-id of every request."""
    kind = "nginx"

    def __init__(self, workdir):
        self.dir = os.path.join(workdir, "nginx")
        os.makedirs(os.path.join(self.dir, "body"), exist_ok=True)
        self.port = free_port()
        self.access_log = os.path.join(self.dir, "access.log")
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(f"""worker_processes 1;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  log_format hooks '$http_webhook_id $status';
  access_log {self.access_log} hooks;
  client_body_temp_path {self.dir}/body;
  keepalive_requests 1000000;
  server {{
    listen 127.0.0.1:{self.port};
    location = /hook {{ return 200; }}
  }}
}}
""")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([NGINX, "-e", os.path.join(self.dir, "error.log"), "-c", self.conf,
                                      "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_port(self.port)
        return self

    def url(self):
        return f"http://127.0.0.1:{self.port}/hook"

    def hits(self):
        """Counter of webhook-id -> requests received."""
        counts = Counter()
        if os.path.exists(self.access_log):
            with open(self.access_log) as f:
                for line in f:
                    parts = line.split()
                    if parts:
                        counts[parts[0]] += 1
        return counts

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # the master stops its workers
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class PythonHookReceiver:
    """The fallback when nginx is not installed: a ThreadingHTTPServer answering 200, counting webhook-ids."""
    kind = "python"

    def __init__(self, workdir=None):
        self.counts = Counter()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver.lock:
                    receiver.counts[self.headers.get("webhook-id", "")] += 1
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

        ThreadingHTTPServer.request_queue_size = 512
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]

    def start(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def url(self):
        return f"http://127.0.0.1:{self.port}/hook"

    def hits(self):
        with self.lock:
            return Counter(self.counts)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def fast_receiver(workdir):
    """nginx when installed (PGCOURIER_CHAOS_NO_NGINX=1 forces the Python fallback)."""
    if os.access(NGINX, os.X_OK) and not os.environ.get("PGCOURIER_CHAOS_NO_NGINX"):
        return NginxReceiver(workdir).start()
    return PythonHookReceiver().start()


# ---- raw socket servers (misbehaving receivers) ----------------------------------------------------------

def read_request(conn, timeout=10.0):
    """Reads one HTTP request (headers + content-length body) from conn; returns the raw bytes ('' on EOF)."""
    conn.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    length = int(m.group(1)) if m else 0
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


class RawServer:
    """A TCP server on 127.0.0.1 calling handler(conn, server) in a thread per connection.
    handler may record into server.stats (a dict guarded by server.lock)."""

    def __init__(self, handler):
        self.handler = handler
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.stats = {"connections": 0}
        self.stopping = threading.Event()
        self.conns = []

    def start(self):
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def url(self, path="/hook", scheme="http"):
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def _accept(self):
        self.sock.settimeout(0.2)
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.stats["connections"] += 1
                self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            self.handler(conn, self)
        except OSError:
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def stop(self):
        self.stopping.set()
        try:
            self.sock.close()
        except OSError:
            pass
        with self.lock:
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                try:
                    c.close()
                except OSError:
                    pass


# ---- PostgreSQL ----------------------------------------------------------------------------------------

def pgdir():
    return os.environ["PGCOURIER_TEST_PGDIR"]


def pg_stop():
    subprocess.check_call([PG_LOCAL, "stop", pgdir()], timeout=60)


def pg_start():
    subprocess.check_output([PG_LOCAL, "start", pgdir(), "--fast"], env={**os.environ, "PGLOCAL_DB": "postgres"},
                            timeout=90)


def pg_running():
    return subprocess.call([PG_LOCAL, "url", pgdir()], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) == 0


def server_pids(data_dir):
    """The postmaster of the cluster in data_dir and every process it forked (backends, checkpointer,
    walwriter, walsenders...)."""
    with open(os.path.join(data_dir, "postmaster.pid")) as f:
        postmaster = int(f.readline())
    children = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True, text=True).stdout.split()
    return [postmaster] + [int(p) for p in children]


def freeze(data_dir, frozen):
    """SIGSTOP on every server process of the cluster in data_dir (what a network partition or stuck
    storage looks like to a client: connections stay open, nothing answers), appending each pid to frozen
    (so a failure halfway still thaws them)."""
    for pid in server_pids(data_dir):  # the postmaster first: it cannot fork a new backend while stopped
        try:
            os.kill(pid, signal.SIGSTOP)
            frozen.append(pid)
        except ProcessLookupError:  # a backend that ended since it was listed
            pass


def thaw(pids, kill=False):
    """SIGCONT to every pid (after a SIGKILL when kill: a stopped process dies of it at once)."""
    for pid in pids:
        for sig in ((signal.SIGKILL,) if kill else ()) + (signal.SIGCONT,):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass


def connect_when_up(url, timeout=30.0):
    """A Database helper, retrying while the server starts."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return Database(url)
        except Exception:  # psycopg2.OperationalError while the server is down or starting
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


# ---- daemons and SQL -------------------------------------------------------------------------------------

def restart(d, timeout=15.0):
    """Starts a (killed) Daemon again and waits until it logs 'ready' once more."""
    before = d.log().count(" ready: ")
    d.start(wait_ready=False)
    wait_for(lambda: d.log().count(" ready: ") > before or d.proc.poll() is not None, timeout=timeout,
             what=f"{d.name} to be ready again")
    assert d.proc.poll() is None, f"{d.name} exited with {d.proc.returncode} after a restart:\n{d.log()[-3000:]}"


def bulk_events(db, n, tenant="acme", event_type="chaos.bulk", pad=64):
    """Inserts n events in one statement (fan-out by trigger); returns how many deliveries exist."""
    db.query("INSERT INTO courier.events (tenant_id, event_type, payload) "
             "SELECT %s, %s, jsonb_build_object('n', g, 'pad', repeat('x', %s)) FROM generate_series(1, %s) g",
             tenant, event_type, pad, n)
    return db.value("SELECT count(*) FROM courier.deliveries")


def lease_expired_events(db):
    return {r[0] for r in db.query(
        "SELECT DISTINCT d.event_id FROM courier.delivery_attempts a "
        "JOIN courier.deliveries d ON d.id = a.delivery_id WHERE a.outcome = 'lease_expired'")}



# ---- replication and backends (tests/chaos/test_failover.py) ----------------------------------------------

PGBIN = "/usr/lib/postgresql/15/bin"


def as_postgres(cmd):
    """cmd run as the 'postgres' user when we are root (PostgreSQL refuses to run as root; tools/pg-local
    does the same)."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else list(cmd)


class ReplicatedPostgres:
    """A primary and a synchronous streaming standby on 127.0.0.1, each on its own free port, in one
    folder under /tmp (owned by 'postgres' when we are root), removed by destroy().

    The primary has wal_level=replica, synchronous_standby_names='*' and synchronous_commit=on, so a
    commit returns only once the standby has it; the standby is a pg_basebackup -R of it. fsync is off
    (nothing here survives the machine; a killed server keeps what the kernel has)."""

    def __init__(self, db="courier"):
        self.dir = tempfile.mkdtemp(prefix="pgcourier-failover-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self.db = db
        self.nodes = {"primary": {"data": os.path.join(self.dir, "primary"), "port": free_port()},
                      "standby": {"data": os.path.join(self.dir, "standby"), "port": free_port()}}

    def _run(self, cmd, timeout=120):
        return subprocess.run(as_postgres(cmd), check=True, capture_output=True, text=True, timeout=timeout)

    def _start(self, name):
        node = self.nodes[name]
        opts = f"-c port={node['port']} -c unix_socket_directories={self.dir}"
        self._run([f"{PGBIN}/pg_ctl", "-D", node["data"], "-l", os.path.join(self.dir, f"{name}.log"),
                   "-o", opts, "-w", "-t", "60", "start"])

    def start(self):
        primary = self.nodes["primary"]["data"]
        self._run([f"{PGBIN}/initdb", "-D", primary, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                   "--locale=C.UTF-8"])
        with open(os.path.join(primary, "postgresql.conf"), "a") as f:
            f.write("\n".join([
                "listen_addresses = '127.0.0.1'", "max_connections = 200", "shared_buffers = 128MB",
                "wal_level = replica", "max_wal_senders = 5", "wal_keep_size = 256MB", "hot_standby = on",
                "synchronous_commit = on", "fsync = off", "log_min_messages = warning"]) + "\n")
        with open(os.path.join(primary, "pg_hba.conf"), "a") as f:
            f.write("host replication all 127.0.0.1/32 trust\n")
        self._start("primary")
        self._run([f"{PGBIN}/createdb", "-h", "127.0.0.1", "-p", str(self.nodes["primary"]["port"]), "-U", "postgres",
                   self.db])
        self._run([f"{PGBIN}/pg_basebackup", "-h", "127.0.0.1", "-p", str(self.nodes["primary"]["port"]), "-U",
                   "postgres", "-D", self.nodes["standby"]["data"], "-R", "-X", "stream", "-c", "fast"])
        self._start("standby")
        primary_db = Database(self.url("primary"))
        try:
            # Synchronous only now: with no standby yet, every commit (createdb's too) would wait forever.
            primary_db.query("ALTER SYSTEM SET synchronous_standby_names = '*'")
            primary_db.query("SELECT pg_reload_conf()")
            wait_for(lambda: primary_db.value("SELECT sync_state FROM pg_stat_replication") == "sync", timeout=30,
                     what="the standby to stream synchronously")
        finally:
            primary_db.close()
        return self

    def url(self, name, db=None):
        return f"postgresql://postgres@127.0.0.1:{self.nodes[name]['port']}/{db or self.db}"

    def multi_host_url(self, db=None):
        """libpq's list of hosts: the first one that accepts writes wins, whichever it is now."""
        return (f"postgresql://postgres@127.0.0.1:{self.nodes['primary']['port']},"
                f"127.0.0.1:{self.nodes['standby']['port']}/{db or self.db}?target_session_attrs=read-write")

    def kill(self, name, how="immediate"):
        """Stops a node as a crash would, without a checkpoint: "immediate" is pg_ctl stop -m immediate
        (every server process quits at once), "sigkill" a SIGKILL of the postmaster alone (its backends
        notice they are orphans and exit; the clients see their connections drop)."""
        if how == "sigkill":
            with open(os.path.join(self.nodes[name]["data"], "postmaster.pid")) as f:
                pid = int(f.readline())
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: not port_accepts(self.nodes[name]["port"]), timeout=15,
                     what=f"the {name} to stop listening")
        else:
            self._run([f"{PGBIN}/pg_ctl", "-D", self.nodes[name]["data"], "-m", "immediate", "-w", "stop"])

    def promote(self, name="standby"):
        self._run([f"{PGBIN}/pg_ctl", "-D", self.nodes[name]["data"], "-w", "-t", "60", "promote"])

    def destroy(self):
        for node in self.nodes.values():
            if os.path.exists(os.path.join(node["data"], "postmaster.pid")):
                subprocess.run(as_postgres([f"{PGBIN}/pg_ctl", "-D", node["data"], "-m", "immediate", "-w", "stop"]),
                               capture_output=True, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)


def run_ctl(db_url, master_key, *args):
    """pgcourierctl against db_url; its stdout (fails the test on a non-zero exit)."""
    env = {**os.environ, "DATABASE_URL": db_url, "PGCOURIER_MASTER_KEY_FILE": master_key}
    result = subprocess.run([PGCOURIERCTL, *args], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"pgcourierctl {' '.join(args)} failed ({result.returncode}): {result.stderr}"
    return result.stdout


def backends(db, application_name):
    """The pids of the server processes serving clients that gave this application_name."""
    return {r[0] for r in db.query("SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                                   application_name)}


def terminate_backends(db, application_name):
    """pg_terminate_backend on every connection with this application_name; the pids terminated.
    The victims are chosen first (a MATERIALIZED CTE): in one WHERE clause the planner may well call
    pg_terminate_backend before it compares the name, and terminate everybody, this session included."""
    return {r[0] for r in db.query(
        "WITH victims AS MATERIALIZED (SELECT pid FROM pg_stat_activity WHERE application_name = %s) "
        "SELECT pid FROM victims WHERE pg_terminate_backend(pid)", application_name)}


def percentile(values, fraction):
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]
