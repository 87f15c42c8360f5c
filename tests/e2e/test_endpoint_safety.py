"""End to end: endpoint safety (SSRF). A subscription URL that the policy's endpoint rules refuse is
failed at once as blocked_destination, without a single byte reaching the network."""
import socket

import psycopg2
import psycopg2.errors
import pytest

from conftest import policy, wait_for

TERMINAL = ("delivered", "failed", "dead_lettered")
NO_ALLOW_LIST = {"require_https": False}   # plain http allowed, nothing non-global allow-listed


def finished(db, event_id, sub_id):
    wait_for(lambda: db.delivery(event_id, sub_id)["status"] in TERMINAL, what=f"the delivery to {sub_id} to finish")
    return db.delivery(event_id, sub_id)


def assert_blocked(db, event_id, sub_id, *words):
    """The delivery failed after one attempt classified blocked_destination, whose summary names each word."""
    d = finished(db, event_id, sub_id)
    assert d["status"] == "failed", d
    assert d["attempts"] == 1 and d["last_status_code"] is None, d
    attempts = db.attempts(d["id"])
    assert [(a["attempt"], a["status_code"], a["outcome"], a["error_class"], a["retryable"]) for a in attempts] == \
        [(1, None, "blocked_destination", "blocked_destination", False)], attempts
    summary = attempts[0]["error_summary"]
    for word in words:
        assert word in summary, f"{word!r} not in {summary!r}"
    return summary


def test_plain_http_is_refused_when_the_policy_requires_https(
        db, receiver, create_subscription, daemon_factory, write_policies):
    # The production default endpoint section: require_https true, empty allow lists.
    policies = write_policies({"default": policy(max_attempts=3, local_endpoints=False)})
    sub_id, _ = create_subscription(receiver.url("/ok"))
    d1 = daemon_factory("d1", policies_file=policies, poll_interval="100ms")
    event_id = db.publish("acme", "order.created", "{}")

    assert_blocked(db, event_id, sub_id, "https")
    d1.stop()  # nothing left that could still reach the receiver
    assert receiver.hits == []


def test_loopback_is_refused_however_it_is_spelled_and_nothing_is_sent(
        db, ctl, make_scripted_receiver, create_subscription, daemon_factory, write_policies):
    r = make_scripted_receiver()
    policies = write_policies({"default": policy(max_attempts=3, local_endpoints=False, endpoint=NO_ALLOW_LIST)})
    hosts = {"localhost": "localhost",            # a name resolving to 127.0.0.1: refused at connect time
             "decimal": "2130706433",             # 127.0.0.1 as one decimal number
             "mapped": "[::ffff:127.0.0.1]",      # IPv4-mapped IPv6
             "hex": "0x7f.1"}                     # hex first part, the last part filling three bytes
    subs = {}
    for name, host in hosts.items():
        url = r.url_for(host, f"/{name}")
        if name in ("decimal", "hex"):
            # Legacy spellings are refused at the door (pgcourierctl, courier.check_endpoint_url) with the
            # address they stand for; a row that holds one anyway (checks off) must still be refused by the daemon.
            refused = ctl("subscription", "create", "--tenant", "acme", "--url", url, "--events", "*", check=False)
            assert refused.returncode == 2 and "write it as 127.0.0.1" in refused.stderr, refused
            with pytest.raises(psycopg2.errors.InvalidParameterValue, match="legacy spelling"):
                db.query("INSERT INTO courier.subscriptions (tenant_id, url, event_types) VALUES ('acme', %s, '{*}')",
                         url)
            subs[name] = create_subscription(r.url_for("127.0.0.1", f"/{name}"))[0]
            db.unchecked("UPDATE courier.subscriptions SET url = %s WHERE id = %s", url, subs[name])
        else:
            subs[name] = create_subscription(url)[0]
    d1 = daemon_factory("d1", policies_file=policies, poll_interval="100ms")
    event_id = db.publish("acme", "order.created", "{}")

    summaries = {name: assert_blocked(db, event_id, sub_id, "loopback") for name, sub_id in subs.items()}
    assert "localhost" in summaries["localhost"], summaries
    d1.stop()
    assert r.hits == [], [h["path"] for h in r.hits]
    # Blocked deliveries are not retried and say nothing about the endpoint's health.
    health = db.rows("SELECT id, consecutive_failures, failing_since FROM courier.subscriptions")
    assert all(h["consecutive_failures"] == 0 and h["failing_since"] is None for h in health), health


def test_an_allow_listed_cidr_lets_a_name_resolving_to_loopback_through(
        db, make_scripted_receiver, create_subscription, daemon_factory, write_policies):
    r = make_scripted_receiver()
    policies = write_policies({"default": policy(
        max_attempts=3, local_endpoints=False, endpoint={"require_https": False, "allow_cidrs": ["127.0.0.0/8"]})})
    sub_id, _ = create_subscription(r.url_for("localhost", "/ok"))
    daemon_factory("d1", policies_file=policies, poll_interval="100ms")
    event_id = db.publish("acme", "order.created", "{}")

    d = finished(db, event_id, sub_id)
    assert d["status"] == "delivered", d
    assert [(a["attempt"], a["status_code"], a["outcome"]) for a in db.attempts(d["id"])] == [(1, 200, "delivered")]
    assert [h["webhook_id"] for h in r.hits] == [event_id]


def test_a_connection_kept_alive_for_an_allowed_subscription_is_not_reused_for_a_refused_one(
        db, make_scripted_receiver, create_subscription, daemon_factory, write_policies):
    # Two tenants' subscriptions point at the same host:port. For the first, the policy allow-lists
    # loopback; for the second it does not. The connect-time check must not be skipped just because a
    # connection to that host:port is already open.
    r = make_scripted_receiver()
    policies = write_policies({
        "default": policy(max_attempts=3, local_endpoints=False, endpoint=NO_ALLOW_LIST),
        "internal": policy(max_attempts=3, local_endpoints=False,
                           endpoint={"require_https": False, "allow_cidrs": ["127.0.0.0/8"]})})
    allowed_sub, _ = create_subscription(r.url_for("localhost", "/allowed"), tenant="inside", policy="internal")
    refused_sub, _ = create_subscription(r.url_for("localhost", "/refused"), tenant="outside")
    d1 = daemon_factory("d1", policies_file=policies, poll_interval="100ms")

    first = db.publish("inside", "order.created", "{}")
    assert finished(db, first, allowed_sub)["status"] == "delivered"
    second = db.publish("outside", "order.created", "{}")
    d = finished(db, second, refused_sub)
    d1.stop()
    assert [h["path"] for h in r.hits] == ["/allowed"], \
        f"a refused destination was reached over a reused connection; its delivery ended {d['status']}"
    assert d["status"] == "failed", d
    assert_blocked(db, second, refused_sub, "loopback")


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_refused_connection_to_an_allowed_address_stays_a_retryable_network_error(
        db, create_subscription, daemon_factory, write_policies):
    # localhost is 127.0.0.1 (allow-listed) and, for curl, also ::1 (not allow-listed). Nobody listens
    # on the port: that is a transient network error to retry, not a refused destination.
    policies = write_policies({"default": policy(
        max_attempts=2, base="100ms", local_endpoints=False,
        endpoint={"require_https": False, "allow_cidrs": ["127.0.0.0/8"]})})
    sub_id, _ = create_subscription(f"http://localhost:{closed_port()}/ok")
    daemon_factory("d1", policies_file=policies, poll_interval="100ms")
    event_id = db.publish("acme", "order.created", "{}")

    d = finished(db, event_id, sub_id)
    attempts = db.attempts(d["id"])
    assert [(a["outcome"], a["error_class"], a["retryable"]) for a in attempts] == [("connection_error", "transient", True)] * 2, \
        [(a["outcome"], a["error_class"], a["error_summary"]) for a in attempts]
    assert d["status"] == "dead_lettered", d
