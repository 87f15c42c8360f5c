"""End to end: a published event reaches the receiver, signed, and is recorded."""
import json

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
