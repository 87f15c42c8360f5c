"""Chaos: rows a careless or hostile producer can write. Each must end in a terminal state with a clear
recorded error (or be refused by the database), without crashing the daemon, while its neighbours are
delivered."""
import json

import psycopg2
import psycopg2.errors
import pytest

from chaos_helpers import rss_kib, summary
from conftest import wait_for

UNFINISHED = "('pending', 'retry_scheduled')"


def wait_finished(db, event_ids, timeout=20):
    wait_for(lambda: db.value(f"SELECT count(*) FROM courier.deliveries WHERE event_id = ANY(%s) "
                              f"AND status IN {UNFINISHED}", list(event_ids)) == 0,
             timeout=timeout, what="the deliveries to finish")


def only_attempt(db, delivery_id):
    attempts = db.attempts(delivery_id)
    assert len(attempts) == 1, attempts
    return attempts[0]


def test_subscription_made_inactive_after_the_delivery_was_created_fails_subscription_inactive(
        db, make_receiver, create_subscription, daemon_factory):
    gone, neighbour = make_receiver(), make_receiver()
    gone_sub, _ = create_subscription(gone.url("/ok"))
    create_subscription(neighbour.url("/ok"))
    event = db.publish("acme", "order.created", '{"n": 1}')       # fans out to both, daemon not running yet
    db.query("UPDATE courier.subscriptions SET active = false WHERE id = %s", gone_sub)
    d = daemon_factory("p1", poll_interval="200ms")
    wait_finished(db, [event])
    row = db.delivery(event, gone_sub)
    a = only_attempt(db, row["id"])
    assert row["status"] == "failed", row
    assert a["outcome"] == "subscription_inactive", a
    assert a["retryable"] is False and a["error_class"], a
    assert gone_sub in (row["last_error"] or ""), row
    assert gone.hits == [], "nothing may be sent to an inactive subscription"
    assert [h["headers"]["webhook-id"] for h in neighbour.hits] == [event]
    assert d.proc.poll() is None, d.log()


BAD_URLS = ["not a url", "http://", "ftp://127.0.0.1/hook", "http://exa mple.com/hook", "//127.0.0.1/hook",
            "http://[::1/hook", "javascript:alert(1)", "http://127.0.0.1:99999/hook"]


def test_urls_that_are_not_urls_fail_invalid_url_and_nothing_is_sent(
        db, make_receiver, create_subscription, daemon_factory):
    neighbour = make_receiver()
    subs = {}
    for url in BAD_URLS:
        sub, _ = create_subscription(neighbour.url("/ok"), events="order.created")
        # The database refuses each of them from every writer (courier.check_endpoint_url, 50_management.sql)...
        with pytest.raises(psycopg2.errors.InvalidParameterValue, match=r"^url: "):
            db.query("UPDATE courier.subscriptions SET url = %s WHERE id = %s", url, sub)
        # ...and a row that holds one anyway (written with the checks off) fails alone in the daemon.
        db.unchecked("UPDATE courier.subscriptions SET url = %s WHERE id = %s", url, sub)
        subs[sub] = url
    good, _ = create_subscription(neighbour.url("/ok"), events="order.created")
    d = daemon_factory("p2", poll_interval="200ms")
    event = db.publish("acme", "order.created", '{"n": 1}')
    wait_finished(db, [event])
    problems = []
    for sub, url in subs.items():
        row = db.delivery(event, sub)
        a = only_attempt(db, row["id"])
        got = (row["status"], a["outcome"], a["retryable"])
        if got != ("failed", "invalid_url", False) or not a["error_summary"]:
            problems.append(f"{url!r}: status {row['status']}, outcome {a['outcome']}, class {a['error_class']}, "
                            f"retryable {a['retryable']}, error {a['error_summary']!r}")
    assert not problems, "URLs that are not URLs:\n" + "\n".join(problems)
    assert db.delivery(event, good)["status"] == "delivered"
    assert len(neighbour.hits) == 1, "only the good subscription may reach the receiver"
    assert d.proc.poll() is None, d.log()


def test_a_50_mb_payload_fails_payload_too_large_as_poison(db, receiver, create_subscription, daemon_factory):
    create_subscription(receiver.url("/ok"))
    # With the default max_payload_bytes (1 MiB) it is refused at publish, naming the limit...
    with db.conn.cursor() as cur:
        try:
            cur.execute("INSERT INTO courier.events (tenant_id, event_type, payload) VALUES "
                        "('acme', 'order.huge', jsonb_build_object('blob', repeat('x', 50 * 1024 * 1024)))")
            raise AssertionError("a 50 MB payload was accepted under the default limit")
        except psycopg2.errors.ProgramLimitExceeded as e:
            assert "over the limit of 1048576 bytes" in str(e), e
    # ...and with the limit raised by the schema owner, the policy's max_body_bytes (1 MiB) stops it
    # in the daemon, which holds it within its memory budget and sends nothing.
    db.query("UPDATE courier.settings SET value = 64 * 1024 * 1024 WHERE name = 'max_payload_bytes'")
    d = daemon_factory("p3", poll_interval="200ms")
    rss_before = rss_kib(d.proc.pid)
    db.conn.autocommit = False
    try:
        with db.conn.cursor() as cur:
            cur.execute("INSERT INTO courier.events (tenant_id, event_type, payload) VALUES "
                        "('acme', 'order.small', '{\"n\": 1}') RETURNING id")
            before = cur.fetchone()[0]
            cur.execute("INSERT INTO courier.events (tenant_id, event_type, payload) VALUES "
                        "('acme', 'order.huge', jsonb_build_object('blob', repeat('x', 50 * 1024 * 1024))) RETURNING id")
            huge = cur.fetchone()[0]
            cur.execute("INSERT INTO courier.events (tenant_id, event_type, payload) VALUES "
                        "('acme', 'order.small', '{\"n\": 2}') RETURNING id")
            after = cur.fetchone()[0]
        db.conn.commit()
    finally:
        db.conn.rollback()
        db.conn.autocommit = True
    wait_finished(db, [before, huge, after], timeout=60)
    row = db.delivery(huge)
    a = only_attempt(db, row["id"])
    rss_after = rss_kib(d.proc.pid)
    summary("producer_50mb_payload", outcome=a["outcome"], error_class=a["error_class"], status=row["status"],
            rss_before_mib=round((rss_before or 0) / 1024, 1), rss_after_mib=round((rss_after or 0) / 1024, 1))
    assert row["status"] == "failed", row
    assert (a["outcome"], a["error_class"], a["retryable"]) == ("payload_too_large", "poison", False), a
    assert "bytes" in (a["error_summary"] or ""), a
    assert [h["headers"]["webhook-id"] for h in receiver.hits if h["headers"]["webhook-id"] == huge] == []
    assert db.delivery(before)["status"] == "delivered" and db.delivery(after)["status"] == "delivered"
    assert d.proc.poll() is None, d.log()


ODD_TYPES = [
    'order."quoted"',
    "order.'single'",
    "back\\slash\\\\double",
    "new\nline\r\nand\ttab",
    "control \x01\x02\x1b[31m\x1f\x7f",
    "unicode ☃ é 中文 𝄞 🙂 \u200b\u202e",
    "</script><script>alert(1)</script>",
    '{"type": "injected", "data": {}}',
    '", "data": {"evil": true}, "x": "',
    "x" * 1000,
    "é" * 1000,
]


def test_event_types_with_odd_characters_arrive_as_valid_json_with_the_exact_type(
        db, receiver, create_subscription, daemon_factory):
    sub, secret = create_subscription(receiver.url("/ok"))
    receiver.secrets = [secret]
    d = daemon_factory("p4", poll_interval="200ms")
    events = {db.publish("acme", t, json.dumps({"i": i})): (i, t) for i, t in enumerate(ODD_TYPES)}
    wait_finished(db, list(events))
    statuses = {e: db.delivery(e)["status"] for e in events}
    assert set(statuses.values()) == {"delivered"}, {events[e][1][:40]: s for e, s in statuses.items()}
    by_id = {h["headers"]["webhook-id"]: h for h in receiver.hits}
    assert set(by_id) == set(events)
    for event, (i, event_type) in events.items():
        h = by_id[event]
        envelope = json.loads(h["body"])   # must parse
        assert envelope["type"] == event_type, (repr(envelope["type"][:80]), repr(event_type[:80]))
        assert envelope["data"] == {"i": i}
        assert set(envelope) == {"type", "timestamp", "data"}, envelope.keys()
        assert h["verified"], f"signature of {event_type[:40]!r} does not verify"
    assert d.proc.poll() is None, d.log()


def test_deliveries_whose_tenant_does_not_match_fail_tenant_mismatch_as_poison(
        db, receiver, create_subscription, daemon_factory):
    acme_sub, _ = create_subscription(receiver.url("/ok"), tenant="acme")
    # An event of another tenant (no subscription there, so no fan-out) ...
    globex_event = db.publish("globex", "order.created", '{"secret": "globex data"}')
    acme_event = db.publish("acme", "order.created", '{"n": 1}')
    assert db.value("SELECT count(*) FROM courier.deliveries WHERE event_id = %s", globex_event) == 0
    # ... wired by hand to acme's subscription: once with the event's tenant, once with the subscription's.
    wrong_sub_tenant = db.value("INSERT INTO courier.deliveries (tenant_id, event_id, subscription_id) "
                                "VALUES ('globex', %s, %s) RETURNING id", globex_event, acme_sub)
    acme_other = db.publish("globex", "order.updated", '{"secret": "more globex data"}')
    wrong_event_tenant = db.value("INSERT INTO courier.deliveries (tenant_id, event_id, subscription_id) "
                                  "VALUES ('acme', %s, %s) RETURNING id", acme_other, acme_sub)
    d = daemon_factory("p5", poll_interval="200ms")
    wait_finished(db, [globex_event, acme_event, acme_other])
    for delivery_id in (wrong_sub_tenant, wrong_event_tenant):
        row = db.rows("SELECT * FROM courier.deliveries WHERE id = %s", delivery_id)[0]
        a = only_attempt(db, delivery_id)
        assert row["status"] == "failed", row
        assert (a["outcome"], a["error_class"], a["retryable"]) == ("tenant_mismatch", "poison", False), a
    sent = [h["headers"]["webhook-id"] for h in receiver.hits]
    assert sent == [acme_event], f"another tenant's event reached acme's endpoint: {sent}"
    assert d.proc.poll() is None, d.log()


def test_a_delivery_for_an_unknown_subscription_or_event_is_refused_by_the_database(
        db, receiver, create_subscription):
    sub, _ = create_subscription(receiver.url("/ok"))
    event = db.publish("acme", "order.created", "{}")
    with pytest.raises(psycopg2.errors.ForeignKeyViolation) as refused:
        db.query("INSERT INTO courier.deliveries (tenant_id, event_id, subscription_id) "
                 "VALUES ('acme', %s, 'sub_does_not_exist')", event)
    assert refused.value.pgcode == "23503"
    assert "subscription_id" in str(refused.value), str(refused.value)
    with pytest.raises(psycopg2.errors.ForeignKeyViolation) as refused:
        db.query("INSERT INTO courier.deliveries (tenant_id, event_id, subscription_id) "
                 "VALUES ('acme', 'evt_does_not_exist', %s)", sub)
    assert "event_id" in str(refused.value), str(refused.value)
    assert db.value("SELECT count(*) FROM courier.deliveries WHERE subscription_id = 'sub_does_not_exist'") == 0
