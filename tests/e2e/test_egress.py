"""End to end: controlled egress through a real squid (Debian's `squid`) started by the test on
127.0.0.1, with a private squid.conf that allows one destination and denies all else.

What is shown: a destination squid allows is delivered through it (squid's access log has the
request, the receiver sees squid's Via header); a destination squid refuses, over plain http and
over CONNECT, is failed once as blocked_destination and not retried; a destination outside the
policy's allow_only_hosts is refused by the daemon before anything is sent (squid's log shows
nothing of it); a proxy that is down is a transient error, retried; proxy credentials from a file or
the environment authenticate against squid's basic auth, wrong or missing ones are squid's 407
(blocked, not retried), and no proxy password is written to the log or any row.

Skipped, with the reason, only when squid is not installed or cannot start."""
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import policy, wait_for

SQUID = shutil.which("squid") or "/usr/sbin/squid"
BASIC_AUTH_HELPER = "/usr/lib/squid/basic_ncsa_auth"  # ships with Debian's squid
TERMINAL = ("delivered", "failed", "dead_lettered")


def hash_password(password):
    """A crypt(3) SHA-512 hash for squid's basic_ncsa_auth password file."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # crypt: fine on Debian 12's Python 3.11
        import crypt
    return crypt.crypt(password, crypt.mksalt(crypt.METHOD_SHA512))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Squid:
    """squid on 127.0.0.1:port with everything (config, pid, logs) in a private folder under /tmp, no
    cache of any kind, allowing requests (and CONNECT) to the (host, port) pairs of `allow` only.
    As root squid switches to the 'proxy' user, so the folder belongs to it (and, like tools/pg-local's,
    sits directly under /tmp, which every user can traverse)."""

    def __init__(self, allow, users=None):
        self.dir = tempfile.mkdtemp(prefix="pgcourier-squid-")
        os.chmod(self.dir, 0o755)
        self.user = None
        if os.geteuid() == 0:
            for name in ("proxy", "nobody"):
                try:
                    pwd.getpwnam(name)
                except KeyError:
                    continue
                self.user = name
                shutil.chown(self.dir, name, name)
                break
        self.allow = list(allow)
        self.users = dict(users or {})  # Basic proxy authentication required when given
        self.access_log = os.path.join(self.dir, "access.log")
        self.cache_log = os.path.join(self.dir, "cache.log")
        self.proc = None
        self.port = None

    def _write_conf(self):
        acls = []
        for i, (host, port) in enumerate(self.allow):
            acls += [f"acl allowed_host_{i} dstdomain {host}", f"acl allowed_port_{i} port {port}",
                     f"http_access allow allowed_host_{i} allowed_port_{i}"]
        auth = []
        if self.users:
            passwd = os.path.join(self.dir, "passwd")
            with open(passwd, "w") as f:
                for user, password in self.users.items():
                    f.write(f"{user}:{hash_password(password)}\n")
            if self.user:
                shutil.chown(passwd, self.user, self.user)
            auth = [f"auth_param basic program {BASIC_AUTH_HELPER} {passwd}", "auth_param basic children 1",
                    "auth_param basic realm pgcourier-egress-test", "acl authenticated proxy_auth REQUIRED",
                    "http_access deny !authenticated"]
        lines = [
            f"http_port 127.0.0.1:{self.port}",
            f"pid_filename {self.dir}/squid.pid",
            f"access_log stdio:{self.access_log} squid",
            f"cache_log {self.cache_log}",
            "buffered_logs off",
            "cache_store_log none",
            "cache deny all",           # a proxy for deliveries, not a cache
            "cache_mem 0 MB",
            "maximum_object_size_in_memory 0 KB",
            f"coredump_dir {self.dir}",
            "pinger_enable off",
            "icp_port 0",
            "htcp_port 0",
            "snmp_port 0",
            "visible_hostname pgcourier-egress-test",
            "shutdown_lifetime 0 seconds",
            "dns_nameservers 127.0.0.1",  # names the tests use come from /etc/hosts; nothing leaves the machine
            *auth,
            *acls,
            "http_access deny all",
        ]
        if self.user:
            lines.append(f"cache_effective_user {self.user}")
        path = os.path.join(self.dir, "squid.conf")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def start(self):
        """Starts squid on a free port (another one if that port was taken meanwhile); None on success,
        else why squid could not start."""
        if not os.access(SQUID, os.X_OK):
            return f"{SQUID} not found (Debian package squid; make deps installs it)"
        why = "squid did not start"
        for _ in range(3):
            self.port = free_port()
            conf = self._write_conf()
            out = open(os.path.join(self.dir, "stdout.log"), "ab")
            self.proc = subprocess.Popen([SQUID, "-N", "-f", conf], stdout=out, stderr=subprocess.STDOUT)
            out.close()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and self.proc.poll() is None and not port_open(self.port):
                time.sleep(0.1)
            if self.proc.poll() is None and port_open(self.port):
                return None
            self.stop()
            why = f"squid did not start (exit {self.proc.returncode}): {self.tail()}"
        return why

    def tail(self, n=8):
        text = ""
        for name in ("stdout.log", "cache.log"):
            path = os.path.join(self.dir, name)
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    text += f.read()
        return " | ".join(text.strip().splitlines()[-n:])

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def log(self, with_user=False):
        """squid's access log as (result code/status, method, URL) tuples (with the authenticated user
        last when with_user), without the lines of the connections start() opened and closed to see
        whether squid listens."""
        if not os.path.exists(self.access_log):
            return []
        entries = []
        with open(self.access_log) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 8 and parts[6] != "error:transaction-end-before-headers":
                    entries.append((parts[3], parts[5], parts[6]) + ((parts[7],) if with_user else ()))
        return entries

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def remove(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def make_squid():
    """make_squid(allow=[(host, port), ...], users={name: password}) -> a started Squid; skips the test
    when squid cannot start."""
    made = []

    def make(allow, users=None):
        s = Squid(allow, users)
        made.append(s)
        why = s.start()
        if why:
            pytest.skip(why)
        return s
    yield make
    for s in made:
        s.remove()


def egress_policy(proxy_url, allow_only=("localhost",), max_attempts=3, **credentials):
    # No allow_cidrs: through a proxy the daemon does not resolve names (curl leaves that to the
    # proxy), so a name like localhost passes the daemon and squid's ACL is what decides.
    return policy(max_attempts=max_attempts, base="100ms", local_endpoints=False,
                  endpoint={"require_https": False, "allow_only_hosts": list(allow_only), "proxy": proxy_url,
                            **credentials})


def finished(db, event_id, sub_id):
    wait_for(lambda: db.delivery(event_id, sub_id)["status"] in TERMINAL, what=f"the delivery to {sub_id} to finish")
    return db.delivery(event_id, sub_id)


def one_blocked_attempt(db, event_id, sub_id):
    """The delivery failed after exactly one attempt, blocked_destination, not retryable; its summary."""
    d = finished(db, event_id, sub_id)
    assert d["status"] == "failed", d
    attempts = db.attempts(d["id"])
    assert [(a["attempt"], a["status_code"], a["outcome"], a["error_class"], a["retryable"]) for a in attempts] == \
        [(1, None, "blocked_destination", "blocked_destination", False)], attempts
    return attempts[0]["error_summary"]


def test_an_allowed_destination_is_delivered_through_the_proxy(
        db, make_scripted_receiver, make_squid, create_subscription, daemon_factory, write_policies):
    r = make_scripted_receiver()
    squid = make_squid([("localhost", r.port)])
    policies = write_policies({"default": egress_policy(squid.url)})
    sub_id, _ = create_subscription(r.url_for("localhost", "/ok"))
    daemon_factory("d1", policies_file=policies, poll_interval="100ms")
    event_id = db.publish("acme", "order.created", "{}")

    d = finished(db, event_id, sub_id)
    assert d["status"] == "delivered", (d, db.attempts(d["id"]))
    assert [(a["attempt"], a["status_code"], a["outcome"]) for a in db.attempts(d["id"])] == [(1, 200, "delivered")]
    assert [h["webhook_id"] for h in r.hits] == [event_id]
    assert "squid" in r.hits[0]["headers"].get("via", ""), r.hits[0]["headers"]  # it came through squid
    wait_for(lambda: ("TCP_MISS/200", "POST", f"http://localhost:{r.port}/ok") in squid.log(),
             what=f"squid's access log to show the delivery: {squid.log()}")


def test_a_destination_the_proxy_refuses_is_blocked_and_not_retried(
        db, make_scripted_receiver, make_squid, create_subscription, daemon_factory, write_policies):
    allowed = make_scripted_receiver()
    refused = make_scripted_receiver()
    squid = make_squid([("localhost", allowed.port)])  # refused.port is not in squid's allow list
    policies = write_policies({"default": egress_policy(squid.url, max_attempts=3)})
    plain_sub, _ = create_subscription(refused.url_for("localhost", "/plain"))
    # https: curl asks squid for a CONNECT tunnel, which squid refuses before any TLS happens.
    tls_sub, _ = create_subscription(f"https://localhost:{refused.port}/tls")
    d1 = daemon_factory("d1", policies_file=policies, poll_interval="100ms")
    event_id = db.publish("acme", "order.created", "{}")

    plain = one_blocked_attempt(db, event_id, plain_sub)
    tls = one_blocked_attempt(db, event_id, tls_sub)
    assert f"egress proxy {squid.url} refused the destination localhost: HTTP 403" in plain, plain
    assert "X-Squid-Error: ERR_ACCESS_DENIED" in plain, plain
    assert f"egress proxy {squid.url} refused the destination localhost: CONNECT answered HTTP 403" in tls, tls
    # Not retried: a second poll round later there is still one attempt each, and squid saw one of each.
    time.sleep(0.5)
    assert db.value("SELECT count(*) FROM courier.delivery_attempts") == 2
    log = squid.log()
    assert ("TCP_DENIED/403", "POST", f"http://localhost:{refused.port}/plain") in log, log
    assert ("TCP_DENIED/403", "CONNECT", f"localhost:{refused.port}") in log, log
    assert len(log) == 2, log
    d1.stop()
    assert refused.hits == []
    # A refusal by the proxy is about the destination, not the endpoint's health.
    health = db.rows("SELECT id, consecutive_failures FROM courier.subscriptions")
    assert all(h["consecutive_failures"] == 0 for h in health), health


def test_a_destination_outside_allow_only_hosts_is_refused_without_touching_the_network(
        db, make_scripted_receiver, make_squid, create_subscription, daemon_factory, write_policies):
    r = make_scripted_receiver()
    squid = make_squid([("localhost", r.port)])
    policies = write_policies({"default": egress_policy(squid.url, allow_only=["localhost"])})
    by_address, _ = create_subscription(r.url_for("127.0.0.1", "/by-address"))  # not listed (squid would refuse it too)
    other_name, _ = create_subscription(r.url_for("hooks.elsewhere.example", "/other"), tenant="other")
    public, _ = create_subscription("http://8.8.8.8/public", tenant="public")  # public: refused all the same
    d1 = daemon_factory("d1", policies_file=policies, poll_interval="100ms")
    acme = db.publish("acme", "order.created", "{}")
    other = db.publish("other", "order.created", "{}")
    pub = db.publish("public", "order.created", "{}")

    assert "127.0.0.1 is not in the policy's allow_only_hosts" in one_blocked_attempt(db, acme, by_address)
    assert "hooks.elsewhere.example is not in the policy's allow_only_hosts" in \
        one_blocked_attempt(db, other, other_name)
    assert "8.8.8.8 is not in the policy's allow_only_hosts" in one_blocked_attempt(db, pub, public)

    # Then an allowed one through the same daemon and squid: its line is the only one in squid's log,
    # so the log works and the refused ones never reached squid.
    allowed, _ = create_subscription(r.url_for("localhost", "/allowed"), tenant="allowed")
    ok = db.publish("allowed", "order.created", "{}")
    assert finished(db, ok, allowed)["status"] == "delivered"
    wait_for(lambda: squid.log(), what="squid's access log to show the allowed delivery")
    d1.stop()
    assert squid.log() == [("TCP_MISS/200", "POST", f"http://localhost:{r.port}/allowed")], squid.log()
    assert [h["path"] for h in r.hits] == ["/allowed"]


def test_a_proxy_that_is_down_is_a_transient_error_and_retried(
        db, make_scripted_receiver, create_subscription, daemon_factory, write_policies):
    r = make_scripted_receiver()
    down = f"http://127.0.0.1:{free_port()}"  # nobody listens there
    policies = write_policies({"default": egress_policy(down, max_attempts=2)})
    sub_id, _ = create_subscription(r.url_for("localhost", "/ok"))
    daemon_factory("d1", policies_file=policies, poll_interval="100ms")
    event_id = db.publish("acme", "order.created", "{}")

    d = finished(db, event_id, sub_id)
    attempts = db.attempts(d["id"])
    assert [(a["outcome"], a["error_class"], a["retryable"]) for a in attempts] == \
        [("connection_error", "transient", True)] * 2, attempts
    assert all(re.search(rf"egress proxy {re.escape(down)} unreachable", a["error_summary"]) for a in attempts), \
        [a["error_summary"] for a in attempts]
    assert d["status"] == "dead_lettered", d
    assert r.hits == []


def test_proxy_credentials_from_a_file_or_the_environment_authenticate_and_are_written_nowhere(
        db, make_scripted_receiver, make_squid, create_subscription, daemon_factory, write_policies, tmp_path,
        monkeypatch):
    r = make_scripted_receiver()
    password = "s3cret:%41-pw"  # a ':' and a '%41' that must reach squid as they are
    # The wrong password is tried for another user: squid 5.7 may answer concurrent requests of one
    # user name with the verdict of a lookup still pending for it, whatever their passwords (seen
    # with separate curl processes too), which would make this test flaky, not the daemon wrong.
    squid = make_squid([("localhost", r.port)], users={"courier": password, "auditor": "the-auditors-password"})
    cred = tmp_path / "egress-proxy.cred"
    cred.write_text(f"courier:{password}\n")
    cred.chmod(0o600)
    wrong = "not-the-password"
    monkeypatch.setenv("PGCOURIER_TEST_EGRESS_AUTH", f"auditor:{wrong}")
    policies = write_policies({
        "default": egress_policy(squid.url, proxy_credentials_file=str(cred)),
        "wrong": egress_policy(squid.url, proxy_credentials_env="PGCOURIER_TEST_EGRESS_AUTH"),
        "none": egress_policy(squid.url)})
    good, _ = create_subscription(r.url_for("localhost", "/good"))
    bad_plain, _ = create_subscription(r.url_for("localhost", "/bad"), tenant="wrong", policy="wrong")
    bad_tls, _ = create_subscription(f"https://localhost:{r.port}/bad-tls", tenant="wrong", policy="wrong")
    anonymous, _ = create_subscription(r.url_for("localhost", "/anonymous"), tenant="none", policy="none")
    d1 = daemon_factory("d1", policies_file=policies, poll_interval="100ms", log_level="trace")
    ok = db.publish("acme", "order.created", "{}")
    refused = db.publish("wrong", "order.created", "{}")
    nobody = db.publish("none", "order.created", "{}")

    assert finished(db, ok, good)["status"] == "delivered"
    assert "HTTP 407 (X-Squid-Error: ERR_CACHE_ACCESS_DENIED" in one_blocked_attempt(db, refused, bad_plain)
    assert "CONNECT answered HTTP 407 (proxy authentication required)" in one_blocked_attempt(db, refused, bad_tls)
    assert "HTTP 407" in one_blocked_attempt(db, nobody, anonymous)
    wait_for(lambda: ("TCP_MISS/200", "POST", f"http://localhost:{r.port}/good", "courier")
             in squid.log(with_user=True), what=f"squid to log the authenticated delivery: {squid.log(True)}")
    d1.stop()
    assert [h["path"] for h in r.hits] == ["/good"]
    # Neither password anywhere: the daemon's log at trace level, the delivery and attempt rows.
    rows = repr(db.query("SELECT * FROM courier.deliveries")) + repr(db.query("SELECT * FROM courier.delivery_attempts"))
    for secret in (password, wrong):
        assert secret not in d1.log()
        assert secret not in rows
