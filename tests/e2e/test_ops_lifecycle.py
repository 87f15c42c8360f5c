"""End to end, operations: the daemon's life under a service manager: sd_notify messages (READY,
WATCHDOG, RELOADING, STOPPING) on a fake NOTIFY_SOCKET, SIGHUP reloads that are rejected or applied,
and JSON logs."""
import json
import os
import re
import shutil
import signal
import socket
import tempfile
import threading
import time

import pytest

from conftest import policy, wait_for
from ops_helpers import metrics_daemon, metrics_port, parse_samples, scrape, exact_sample


class NotifySocket:
    """A unix datagram socket playing systemd's NOTIFY_SOCKET; records (monotonic time, message)."""

    def __init__(self, directory):
        path = os.path.join(directory, "notify.sock")
        self.tmpdir = None
        if len(path) > 100:  # sun_path holds 108 bytes
            self.tmpdir = tempfile.mkdtemp(prefix="pgc-ntf-")
            path = os.path.join(self.tmpdir, "notify.sock")
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.1)
        self.messages = []
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while self.running:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.messages.append((time.monotonic(), data.decode()))

    def lines(self):
        """[(time, 'KEY=value')]: each datagram split into its newline-separated assignments."""
        with self.lock:
            return [(t, line) for t, m in self.messages for line in m.split("\n") if line]

    def index_of(self, assignment, after=-1):
        for i, (_, line) in enumerate(self.lines()):
            if i > after and line == assignment:
                return i
        return None

    def close(self):
        self.running = False
        self.thread.join(timeout=2)
        self.sock.close()
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)


@pytest.fixture
def notify_socket(tmp_path):
    s = NotifySocket(str(tmp_path))
    yield s
    s.close()


def notified_daemon(daemon_factory, notify_socket, **settings):
    """A daemon started as systemd would with Type=notify and WatchdogSec=400ms."""
    d = daemon_factory("d1", start=False, **settings)
    d.env["NOTIFY_SOCKET"] = notify_socket.path
    d.env["WATCHDOG_USEC"] = "400000"  # systemd's WatchdogSec=400ms: a ping at least every 200 ms expected
    d.start()
    wait_for(lambda: notify_socket.index_of("READY=1") is not None, timeout=5, what="READY=1")
    return d


def test_sd_notify_ready_then_reloading_ready_on_sighup_then_stopping_on_sigterm_and_exit_0(
        db, receiver, create_subscription, daemon_factory, notify_socket):
    create_subscription(receiver.url("/ok"))
    d = notified_daemon(daemon_factory, notify_socket)
    first_ready = notify_socket.index_of("READY=1")
    assert notify_socket.index_of("RELOADING=1") is None and notify_socket.index_of("STOPPING=1") is None
    # READY=1 comes once the daemon can deliver: an event published now is delivered.
    event = db.publish("acme", "order.created", "{}")
    wait_for(lambda: db.delivery(event)["status"] == "delivered", timeout=5, what="the delivery")
    wait_for(lambda: notify_socket.index_of("WATCHDOG=1") is not None, timeout=3, what="a WATCHDOG=1")

    d.signal(signal.SIGHUP)
    reloading = wait_for(lambda: notify_socket.index_of("RELOADING=1"), timeout=5, what="RELOADING=1")
    assert reloading > first_ready
    wait_for(lambda: notify_socket.index_of("READY=1", after=reloading) is not None, timeout=5,
             what="READY=1 after RELOADING=1")
    assert "reloaded" in d.log()

    d.signal(signal.SIGTERM)
    assert d.wait(timeout=30) == 0, d.log()
    time.sleep(0.2)  # the reader thread picks up the last datagrams
    stopping = notify_socket.index_of("STOPPING=1")
    assert stopping is not None, notify_socket.lines()[-5:]
    assert stopping > notify_socket.index_of("READY=1", after=reloading)
    assert notify_socket.index_of("READY=1", after=stopping) is None, "READY=1 after STOPPING=1"


def test_watchdog_pings_arrive_at_least_every_half_watchdog_usec_while_idle(
        db, receiver, create_subscription, daemon_factory, notify_socket):
    create_subscription(receiver.url("/ok"))
    d = notified_daemon(daemon_factory, notify_socket)
    ready_at = notify_socket.lines()[notify_socket.index_of("READY=1")][0]
    time.sleep(max(0.0, ready_at + 2.0 - time.monotonic()))
    assert d.proc.poll() is None, d.log()
    pings = [t for t, line in notify_socket.lines() if line == "WATCHDOG=1" and ready_at <= t <= ready_at + 2.0]
    gaps = [round(b - a, 3) for a, b in zip(pings, pings[1:])]
    seen = [round(t - ready_at, 3) for t, line in notify_socket.lines() if line == "WATCHDOG=1"]
    # systemd kills the service when no ping arrives within WATCHDOG_USEC (400 ms); sd_watchdog_enabled(3)
    # recommends pinging every half of it.
    assert len(pings) >= 3, (f"{len(pings)} WATCHDOG=1 in the 2 s after READY=1 with WATCHDOG_USEC=400000 "
                             f"(every WATCHDOG=1, in s after READY=1: {seen})")
    assert max(gaps) < 0.4, f"gaps between WATCHDOG=1: {gaps}: systemd would have killed the service"


INVALID_POLICIES = """policies:
  default:
    max_attempts: 5
    colour: red
    endpoint:
      require_https: false
      allow_cidrs: [127.0.0.0/8]
"""


def test_sighup_rejects_an_invalid_policies_file_keeps_the_old_one_then_applies_a_valid_reload(
        db, receiver, create_subscription, daemon_factory, write_policies):
    valid = policy(max_attempts=2, base="50ms", cap="100ms")
    policies_path = write_policies({"default": valid})
    create_subscription(receiver.url("/ok"), events="order.*")
    create_subscription(receiver.url("/status/500"), events="invoice.*")
    d = metrics_daemon(daemon_factory, "d1", policies_file=policies_path, poll_interval="100ms")
    port = metrics_port(d)

    def reloads(result):
        return exact_sample(parse_samples(scrape(port)), "pgcourier_config_reloads_total", result=result)

    first = db.publish("acme", "order.created", '{"n": 1}')
    wait_for(lambda: db.delivery(first)["status"] == "delivered", what="the first delivery")

    # 1. A policies file with an unknown key: rejected as a whole, named by file, line and YAML path.
    with open(policies_path, "w") as f:
        f.write(INVALID_POLICIES)
    d.signal(signal.SIGHUP)
    wait_for(lambda: "reload rejected" in d.log(), timeout=5, what="the reload to be rejected")
    log = d.log()
    assert f"{policies_path}:4: policies.default.colour" in log, log
    assert "unknown key" in log[log.index("reload rejected"):], log
    assert "reloaded" not in log
    assert d.proc.poll() is None
    wait_for(lambda: reloads("failure") == 1, timeout=5, what="the failure counter")
    assert reloads("success") == 0

    # The old policies stay in force: max_attempts 2, not the rejected file's 5.
    failing = db.publish("acme", "invoice.created", '{"n": 2}')
    ok = db.publish("acme", "order.created", '{"n": 3}')
    wait_for(lambda: db.delivery(failing)["status"] == "dead_lettered", timeout=10,
             what="the failing delivery to be dead-lettered under the old policy")
    assert db.delivery(failing)["attempts"] == 2
    wait_for(lambda: db.delivery(ok)["status"] == "delivered", what="a delivery after the rejected reload")
    assert "-> sending" not in d.log()  # log level info so far

    # 2. A valid policies file and log_level debug in the settings file: applied on the next SIGHUP.
    write_policies({"default": valid})
    with open(d.config_path, "a") as f:
        f.write("log_level: debug\n")
    d.signal(signal.SIGHUP)
    wait_for(lambda: "reloaded 1 policies" in d.log(), timeout=5, what="the reload to be applied")
    assert re.search(r"reloaded 1 policies from .*; log level debug", d.log()), d.log()
    after = db.publish("acme", "order.created", '{"n": 4}')
    wait_for(lambda: db.delivery(after)["status"] == "delivered", what="a delivery after the good reload")
    delivery_id = db.delivery(after)["id"]
    wait_for(lambda: re.search(rf"delivery {delivery_id} attempt 1 .*-> sending", d.log()), timeout=5,
             what="a debug '-> sending' line for the new delivery")
    wait_for(lambda: reloads("success") == 1, timeout=5, what="the success counter")
    assert reloads("failure") == 1
    assert d.proc.poll() is None


TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})$")


def test_json_log_format_writes_one_json_object_per_line_including_failures_reloads_and_shutdown(
        db, receiver, create_subscription, daemon_factory, write_policies):
    policies_path = write_policies({"default": policy(max_attempts=1)})
    create_subscription(receiver.url("/status/500"))
    d = daemon_factory("d1", policies_file=policies_path, log_format="json", poll_interval="100ms")
    event = db.publish("acme", "order.created", "{}")
    wait_for(lambda: db.delivery(event)["status"] == "dead_lettered", timeout=10, what="the dead letter")
    delivery_id = db.delivery(event)["id"]
    wait_for(lambda: delivery_id in d.log(), timeout=5, what="the failure to be logged")

    # A rejected reload logs a multi-line message: still one JSON object per line.
    with open(policies_path, "w") as f:
        f.write(INVALID_POLICIES)
    d.signal(signal.SIGHUP)
    wait_for(lambda: "reload rejected" in d.log(), timeout=5, what="the rejected reload")
    d.signal(signal.SIGTERM)
    assert d.wait(timeout=30) == 0, d.log()

    lines = d.log().splitlines()
    assert len(lines) >= 5, lines
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}")
        assert isinstance(record, dict), line
        assert {"ts", "level", "msg"} <= record.keys(), line
        assert TS.match(record["ts"]), record["ts"]
        assert record["level"] in {"trace", "debug", "info", "warning", "error", "critical"}, record["level"]
        records.append(record)

    failures = [r for r in records if delivery_id in r["msg"]]
    assert failures, "no log line names the failed delivery"
    assert any("500" in r["msg"] and "dead_lettered" in r["msg"] for r in failures), failures
    rejected = [r for r in records if "reload rejected" in r["msg"]]
    assert len(rejected) == 1 and rejected[0]["level"] == "error", rejected
    assert f"{policies_path}:4: policies.default.colour" in rejected[0]["msg"], rejected[0]
    assert any("ready" in r["msg"] for r in records)
    assert "stopped" in records[-1]["msg"], records[-1]
