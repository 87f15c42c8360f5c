"""End to end: several deliveries to one slow receiver are in flight side by side."""
from conftest import policy, wait_for


def publish_together(db, n, event_type="order.created"):
    """n events in one transaction: one NOTIFY, claimed in one batch."""
    db.conn.autocommit = False
    try:
        with db.conn.cursor() as cur:
            ids = []
            for i in range(n):
                cur.execute("SELECT courier.publish('acme', %s, %s::jsonb)", (event_type, f'{{"n": {i}}}'))
                ids.append(cur.fetchone()[0])
        db.conn.commit()
    finally:
        db.conn.autocommit = True
    return ids


def test_concurrent_deliveries_to_one_slow_receiver_are_sent_in_parallel(
        db, receiver, create_subscription, daemon_factory, write_policies):
    policies = write_policies({"default": policy(connect="1s", request="5s")})
    create_subscription(receiver.url("/hang/2"))
    daemon_factory("d1", policies_file=policies, poll_interval="100ms", shutdown_grace="5s")
    events = publish_together(db, 4)

    wait_for(lambda: all(db.delivery(e)["status"] == "delivered" for e in events), timeout=15,
             what="the deliveries to be delivered")
    hits = receiver.hits_for("/hang/2")
    assert sorted(h["headers"]["webhook-id"] for h in hits) == sorted(events)
    arrivals = sorted(h["arrived_at"] for h in hits)
    spread = arrivals[-1] - arrivals[0]
    # Concurrency is 256: the 4 requests must not wait for each other's 2-second responses.
    assert spread < 1.0, f"requests reached the receiver over {spread:.2f}s: {[round(a - arrivals[0], 3) for a in arrivals]}"


def test_a_timeout_attempt_is_recorded_only_for_a_request_that_was_sent(
        db, receiver, create_subscription, daemon_factory, write_policies):
    # One attempt each: a timeout dead-letters the delivery, so it must have reached the receiver.
    policies = write_policies({"default": policy(max_attempts=1, connect="1s", request="1s")})
    create_subscription(receiver.url("/hang/3"))
    daemon_factory("d1", policies_file=policies, poll_interval="100ms", shutdown_grace="1s")
    events = publish_together(db, 3)

    wait_for(lambda: all(db.delivery(e)["status"] == "dead_lettered" for e in events), timeout=10,
             what="the deliveries to be dead-lettered")
    attempts = [a for e in events for a in db.attempts(db.delivery(e)["id"])]
    problems = [(a["delivery_id"], a["outcome"], a["duration_ms"], a["error_summary"]) for a in attempts
                if a["outcome"] != "timeout" or a["duration_ms"] < 900]
    assert problems == [], "attempts that did not wait for the 1s request timeout"
    assert sorted(h["headers"]["webhook-id"] for h in receiver.hits_for("/hang/3")) == sorted(events), \
        "dead-lettered deliveries whose request never reached the receiver"
