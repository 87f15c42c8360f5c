"""End to end: configuration problems, policy reloads, bad subscriptions, NOTIFY latency, no database."""
import os
import signal
import socket
import subprocess
import time
import uuid

import psycopg2
import psycopg2.errors
import pytest

from conftest import LOCAL_POLICIES, PGCOURIERD, Daemon, policy, wait_for


def held_for_unknown_policy(db, receiver, create_subscription, daemon_factory, write_policies):
    """A 'ghost' subscription (policy not in the file) next to a 'default' one; one event for both.
    Returns (daemon, policies path, event id, ghost subscription id, ok subscription id) once the ghost
    delivery has been held and the other delivered."""
    policies = write_policies({"default": policy()})
    ghost_sub, _ = create_subscription(receiver.url("/ghost"), policy="ghost")
    ok_sub, _ = create_subscription(receiver.url("/ok"))
    d1 = daemon_factory("d1", policies_file=policies, poll_interval="100ms")
    event_id = db.publish("acme", "order.created", '{"n": 1}')
    wait_for(lambda: db.delivery(event_id, ok_sub)["status"] == "delivered", what="the other delivery")
    wait_for(lambda: db.delivery(event_id, ghost_sub)["last_error"], what="the ghost delivery to be held")
    return d1, policies, event_id, ghost_sub, ok_sub


def test_a_delivery_whose_policy_is_undefined_is_held_while_others_are_delivered(
        db, receiver, create_subscription, daemon_factory, write_policies):
    d1, policies, event_id, ghost_sub, ok_sub = held_for_unknown_policy(
        db, receiver, create_subscription, daemon_factory, write_policies)
    held = db.delivery(event_id, ghost_sub)
    assert held["status"] == "pending" and held["attempts"] == 0, held
    assert held["lease_owner"] is None and held["lease_expires_at"] is None
    assert "ghost" in held["last_error"] and policies in held["last_error"], held["last_error"]
    assert db.attempts(held["id"]) == []
    assert receiver.hits_for("/ghost") == []
    assert len(receiver.hits_for("/ok", msg_id=event_id)) == 1
    assert "held" in d1.log() and "'ghost'" in d1.log()


def test_a_held_delivery_is_delivered_soon_after_sighup_defines_its_policy(
        db, receiver, create_subscription, daemon_factory, write_policies):
    d1, policies, event_id, ghost_sub, _ = held_for_unknown_policy(
        db, receiver, create_subscription, daemon_factory, write_policies)
    assert db.delivery(event_id, ghost_sub)["status"] == "pending"

    write_policies({"default": policy(), "ghost": policy(max_attempts=2)})  # same path, now defines 'ghost'
    d1.signal(signal.SIGHUP)
    wait_for(lambda: "reloaded 2 policies" in d1.log(), timeout=5, what="d1 to reload its policies")
    reloaded = time.monotonic()
    # The operator fixed the configuration: the held delivery should go out promptly, not after the hold.
    wait_for(lambda: db.delivery(event_id, ghost_sub)["status"] == "delivered", timeout=5,
             what="the held delivery to be delivered after the reload")
    assert time.monotonic() - reloaded < 5
    d = db.delivery(event_id, ghost_sub)
    assert [(a["attempt"], a["status_code"], a["outcome"]) for a in db.attempts(d["id"])] == [(1, 200, "delivered")]
    assert len(receiver.hits_for("/ghost", msg_id=event_id)) == 1


def test_an_idle_daemon_attempts_a_published_event_at_once_through_notify(
        db, receiver, create_subscription, daemon_factory):
    create_subscription(receiver.url("/ok"))
    # The poll timer fires at start-up and then only every 24-36 s: a fast delivery can only come from NOTIFY.
    d1 = daemon_factory("d1", poll_interval="30s")
    time.sleep(0.5)  # idle
    for n in range(2):
        published = time.time()
        event_id = db.publish("acme", "order.created", f'{{"n": {n}}}')
        hits = wait_for(lambda: receiver.hits_for("/ok", msg_id=event_id), timeout=5,
                        what="the receiver to see the event")
        latency = hits[0]["arrived_at"] - published
        assert latency < 1.0, f"event {n} reached the receiver {latency:.3f}s after publish"
        wait_for(lambda: db.delivery(event_id)["status"] == "delivered", what="the delivery to be recorded")
    assert d1.proc.poll() is None


def check_config(tmp_path, policies_path):
    config = tmp_path / "check.yaml"
    config.write_text("worker_id: check\nmetrics_address: ''\n")
    return subprocess.run([PGCOURIERD, "--check-config", "--config", str(config), "--policies", policies_path],
                          capture_output=True, text=True, timeout=30)


def test_check_config_rejects_a_broken_policies_file_naming_the_file_and_yaml_paths(tmp_path, write_policies):
    bad = tmp_path / "broken.yaml"
    bad.write_text("policies:\n"
                   "  default:\n"
                   "    max_attempts: three\n"
                   "    colour: red\n"
                   "    timeouts:\n"
                   "      request: 30\n")
    result = check_config(tmp_path, str(bad))
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert f"{bad}:3: policies.default.max_attempts:" in out, out
    assert f"{bad}:4: policies.default.colour: unknown key" in out, out
    assert f"{bad}:6: policies.default.timeouts.request:" in out, out
    assert "configuration OK" not in out

    good = write_policies({"default": policy(), "patient": policy(max_attempts=5)})
    result = check_config(tmp_path, good)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "configuration OK: 2 policies from " + good in result.stdout


@pytest.fixture
def empty_db_url(pg_admin_url):
    """A database created without a template argument: no courier schema, no migrations."""
    name = "e2e_empty_" + uuid.uuid4().hex[:8]
    admin = psycopg2.connect(pg_admin_url)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    yield pg_admin_url.rsplit("/", 1)[0] + "/" + name
    admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def test_the_daemon_refuses_a_database_without_migrations(empty_db_url, master_key, tmp_path):
    d = Daemon(empty_db_url, master_key, str(tmp_path), "d1", {"policies_file": LOCAL_POLICIES})
    try:
        d.start(wait_ready=False)
        assert d.wait(timeout=10) == 1, d.log()
        log = d.log()
        assert "001_baseline" in log, log
        assert "pgcourierctl migrate" in log, log
        assert "ready" not in log
    finally:
        d.stop()


def test_an_invalid_subscription_url_fails_its_delivery_and_not_its_neighbours(
        db, receiver, create_subscription, daemon_factory):
    # The database refuses such a URL from every writer (courier.check_endpoint_url); a row that holds one
    # anyway (written with the checks off) still fails alone in the daemon, as invalid_url.
    with pytest.raises(psycopg2.errors.InvalidParameterValue, match="url: the URL contains a space"):
        db.query("INSERT INTO courier.subscriptions (tenant_id, url, event_types) VALUES ('acme', 'not a url', '{*}')")
    bad_sub = db.unchecked("INSERT INTO courier.subscriptions (tenant_id, url, event_types) "
                           "VALUES ('acme', 'not a url', '{*}') RETURNING id")[0][0]
    ok_sub, _ = create_subscription(receiver.url("/ok"))
    daemon_factory("d1", poll_interval="100ms")
    events = [db.publish("acme", "order.created", f'{{"n": {i}}}') for i in range(3)]

    wait_for(lambda: all(db.delivery(e, ok_sub)["status"] == "delivered" for e in events)
             and all(db.delivery(e, bad_sub)["status"] == "failed" for e in events),
             what="good deliveries delivered and bad ones failed")
    for e in events:
        bad = db.delivery(e, bad_sub)
        assert bad["attempts"] == 1 and bad["last_status_code"] is None
        assert "subscription URL" in bad["last_error"] and "not a valid" in bad["last_error"], bad["last_error"]
        assert [(a["attempt"], a["outcome"], a["error_class"], a["retryable"]) for a in db.attempts(bad["id"])] == \
            [(1, "invalid_url", "validation", False)]
        assert len(receiver.hits_for("/ok", msg_id=e)) == 1
    assert len(receiver.hits) == 3


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_database_at_start_is_retried_not_fatal(master_key, tmp_path):
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere?connect_timeout=2"
    d = Daemon(url, master_key, str(tmp_path), "d1", {"policies_file": LOCAL_POLICIES})
    try:
        started = time.monotonic()
        d.start(wait_ready=False)
        wait_for(lambda: "cannot reach the database" in d.log() or d.proc.poll() is not None, timeout=5,
                 what="d1 to report the unreachable database")
        time.sleep(max(0.0, 2.0 - (time.monotonic() - started)))
        assert d.proc.poll() is None, f"pgcourierd exited with {d.proc.returncode}:\n{d.log()}"
        log = d.log()
        assert log.count("cannot reach the database") >= 2, log  # it keeps retrying
        assert "retrying in" in log and "ready" not in log
        d.signal(signal.SIGTERM)
        assert d.wait(timeout=5) == 0, d.log()
    finally:
        d.stop()
