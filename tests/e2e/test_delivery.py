"""End to end: a published event reaches the receiver, signed, and is recorded."""
import json
import select
import time

import psycopg2

from conftest import wait_for


def test_200_is_delivered_with_a_signature_the_receiver_verifies(db, receiver, create_subscription, daemon_factory):
    sub_id, secret = create_subscription(receiver.url("/ok"), events="order.*")
    receiver.secrets.append(secret)
    daemon_factory("d1")
    event_id = db.publish("acme", "order.created", '{"order_id": 42}', trace_id="4bf92f3577b34da6a3ce929d0e0e4736")

    wait_for(lambda: db.value("SELECT status FROM courier.deliveries WHERE event_id = %s", event_id) == "delivered",
             what="delivery to be delivered")
    hits = receiver.hits_for("/ok")
    assert len(hits) == 1
    hit = hits[0]
    assert hit["verified"], hit["headers"]
    assert hit["headers"]["webhook-id"] == event_id
    assert hit["headers"]["content-type"] == "application/json"
    assert hit["headers"]["traceparent"].startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-")
    body = json.loads(hit["body"])
    assert body["type"] == "order.created" and body["data"] == {"order_id": 42}
    attempts = db.query("SELECT attempt, status_code, outcome, error_class, retryable FROM courier.delivery_attempts "
                        "JOIN courier.deliveries d ON d.id = delivery_id WHERE d.event_id = %s", event_id)
    assert attempts == [(1, 200, "delivered", None, False)]


def _notifications(conn, channel, timeout):
    """Notifications on channel that arrive within timeout seconds (conn listens already)."""
    deadline = time.monotonic() + timeout
    got = []
    while time.monotonic() < deadline:
        if select.select([conn], [], [], max(0.0, deadline - time.monotonic())) != ([], [], []):
            conn.poll()
            got += [n for n in conn.notifies if n.channel == channel]
            conn.notifies.clear()
            if got:
                return got
    return got


def test_delivered_webhook_writes_an_outbox_event_and_wakes_outbox_listeners(db, db_url, receiver,
                                                                             create_subscription, daemon_factory):
    # The daemon defers the outbox NOTIFY of its outcome statement and sends one
    # coalesced NOTIFY after the commit (notify_when_inserted, sql/schema/10_core.sql):
    # a listener is still woken.
    listener = psycopg2.connect(db_url)
    listener.autocommit = True
    listener.cursor().execute("LISTEN courier_outbox")
    create_subscription(receiver.url("/ok"))
    daemon = daemon_factory("d1")
    event_id = db.publish("acme", "order.created", '{"n": 1}')
    wait_for(lambda: db.value("SELECT status FROM courier.deliveries WHERE event_id = %s", event_id) == "delivered",
             what="delivery to be delivered")
    assert _notifications(listener, "courier_outbox", 3.0), "no NOTIFY courier_outbox after the delivery"
    delivery_id = db.delivery(event_id)["id"]
    rows = db.rows("SELECT event_type, tenant_id, body FROM courier.outbox WHERE subject_id = %s", delivery_id)
    assert [(r["event_type"], r["tenant_id"], r["body"]["status"]) for r in rows] == \
        [("WebhookDelivered", "acme", "delivered")]
    errors = [line for line in daemon.log().splitlines() if " error " in line or " critical " in line]
    assert errors == [], errors
    listener.close()


def test_outbox_and_delivery_triggers_notify_only_for_inserted_rows(db, db_url):
    listener = psycopg2.connect(db_url)
    listener.autocommit = True
    listener.cursor().execute("LISTEN courier_outbox; LISTEN courier_deliveries")
    insert = ("INSERT INTO courier.outbox (event_type, tenant_id, subject_id, body) "
              "SELECT 'Test', 'acme', 'x', '{}' FROM generate_series(1, %s)")
    db.query(insert, 0)  # no row: no NOTIFY
    assert _notifications(listener, "courier_outbox", 0.5) == []
    db.query(insert, 1)
    assert len(_notifications(listener, "courier_outbox", 2.0)) == 1
    # A transaction that defers its outbox NOTIFY, as the daemon's outcome statement does.
    db.conn.autocommit = False
    with db.conn.cursor() as cur:
        cur.execute("SET LOCAL courier.outbox_notify = 'deferred'")
        cur.execute(insert, (1,))
    db.conn.commit()
    db.conn.autocommit = True
    assert _notifications(listener, "courier_outbox", 0.5) == []
    # An event no subscription matches creates no delivery and wakes no daemon.
    db.publish("nobody", "order.created", "{}")
    assert _notifications(listener, "courier_deliveries", 0.5) == []
    listener.close()
