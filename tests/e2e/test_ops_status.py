"""End to end, operations: the status views operators query (courier.queue_depth, queue_lag,
subscription_health, dead_letters, delivery_timeline) and `pgcourierctl status`, checked against a
known mix of delivered, dead-lettered, scheduled, held and due deliveries."""
import datetime
import re

from conftest import policy, wait_for


def test_status_views_and_pgcourierctl_status_report_a_known_mix_of_outcomes(
        db, receiver, create_subscription, daemon_factory, write_policies, ctl):
    policies = write_policies({
        "default": policy(),
        "impatient": policy(max_attempts=1),
        "slow": policy(max_attempts=5, base="1h", cap="1h", jitter=0),  # the retry is an hour away
    })
    sub_ok, _ = create_subscription(receiver.url("/ok"), events="order.*")
    sub_dead, _ = create_subscription(receiver.url("/status/500"), events="invoice.*", policy="impatient")
    sub_retry, _ = create_subscription(receiver.url("/status/502"), events="refund.*", policy="slow")
    sub_paused, _ = create_subscription(receiver.url("/ok"), events="ship.*")
    sub_globex, _ = create_subscription(receiver.url("/ok"), tenant="globex")
    ctl("subscription", "pause", sub_paused, "--reason", "maintenance window")
    # Served tenants: acme only, so globex's delivery stays due.
    daemon_factory("d1", policies_file=policies, tenants="[acme]", poll_interval="100ms")

    ok_events = [db.publish("acme", "order.created", f'{{"n": {i}}}') for i in range(2)]
    dead_event = db.publish("acme", "invoice.created", '{"amount": 42}', None, "trace-dead")
    retry_event = db.publish("acme", "refund.created", '{"n": 3}')
    paused_event = db.publish("acme", "ship.created", '{"n": 4}')
    globex_event = db.publish("globex", "order.created", '{"n": 5}')

    def settled():
        return (all(db.delivery(e)["status"] == "delivered" for e in ok_events)
                and db.delivery(dead_event)["status"] == "dead_lettered"
                and db.delivery(retry_event)["status"] == "retry_scheduled"
                and db.delivery(paused_event)["next_attempt_at"] == datetime.datetime.max.replace(
                    tzinfo=datetime.timezone.utc)
                and db.delivery(paused_event)["status"] == "pending")
    wait_for(settled, timeout=10, what="the mix of outcomes")
    dead = db.delivery(dead_event)
    retry = db.delivery(retry_event)
    globex = db.delivery(globex_event)
    assert (globex["status"], globex["attempts"]) == ("pending", 0)

    # courier.queue_depth: unfinished work only, by tenant, subscription and state.
    depth = db.rows("SELECT tenant_id, subscription_id, state, deliveries, oldest_created_at, "
                    "earliest_next_attempt_at FROM courier.queue_depth ORDER BY tenant_id, state")
    assert [(r["tenant_id"], r["subscription_id"], r["state"], r["deliveries"]) for r in depth] == [
        ("acme", sub_paused, "held", 1),
        ("acme", sub_retry, "scheduled", 1),
        ("globex", sub_globex, "due", 1),
    ], depth
    by_state = {r["state"]: r for r in depth}
    assert by_state["scheduled"]["earliest_next_attempt_at"] == retry["next_attempt_at"]
    assert by_state["due"]["earliest_next_attempt_at"] == globex["next_attempt_at"]
    assert by_state["due"]["oldest_created_at"] == globex["created_at"]

    # courier.queue_lag: the one due delivery and how long it has waited.
    lag = db.rows("SELECT due_now, oldest_due_at, lag_seconds, now() - oldest_due_at AS waited FROM courier.queue_lag")
    assert len(lag) == 1 and lag[0]["due_now"] == 1, lag
    assert lag[0]["oldest_due_at"] == globex["next_attempt_at"]
    assert abs(lag[0]["lag_seconds"] - lag[0]["waited"].total_seconds()) < 0.01, lag
    assert lag[0]["lag_seconds"] > 0

    # The scheduled retry really is an hour away (policy 'slow', no jitter).
    delay = (retry["next_attempt_at"] - retry["updated_at"]).total_seconds()
    assert 3590 < delay < 3610, delay

    # courier.subscription_health: one row per subscription with its state and counters.
    health = {r["subscription_id"]: r for r in db.rows("SELECT * FROM courier.subscription_health")}
    assert set(health) == {sub_ok, sub_dead, sub_retry, sub_paused, sub_globex}
    summary = {s: (h["state"], h["consecutive_failures"], h["held_deliveries"]) for s, h in health.items()}
    assert summary == {
        sub_ok: ("active", 0, 0),
        sub_dead: ("active", 1, 0),
        sub_retry: ("active", 1, 0),
        sub_paused: ("paused", 0, 1),
        sub_globex: ("active", 0, 0),
    }, summary
    assert health[sub_ok]["last_success_at"] is not None and health[sub_ok]["failing_since"] is None
    assert health[sub_dead]["last_success_at"] is None and health[sub_dead]["failing_since"] is not None
    assert "500" in health[sub_dead]["last_error"], health[sub_dead]
    assert "502" in health[sub_retry]["last_error"], health[sub_retry]
    assert health[sub_paused]["pause_reason"] == "maintenance window"
    assert health[sub_globex]["last_success_at"] is None and health[sub_globex]["last_failure_at"] is None
    assert health[sub_dead]["policy"] == "impatient" and health[sub_retry]["policy"] == "slow"

    # courier.dead_letters: exactly the one dead letter, with its event.
    letters = db.rows("SELECT * FROM courier.dead_letters")
    assert len(letters) == 1, letters
    letter = letters[0]
    assert (letter["delivery_id"], letter["tenant_id"], letter["subscription_id"], letter["url"]) == \
        (dead["id"], "acme", sub_dead, receiver.url("/status/500"))
    assert (letter["attempts"], letter["last_status_code"], letter["event_id"], letter["event_type"]) == \
        (1, 500, dead_event, "invoice.created")
    assert letter["payload"] == {"amount": 42} and letter["trace_id"] == "trace-dead"
    assert letter["dead_lettered_at"] == dead["completed_at"] and letter["dead_lettered_at"] is not None

    # courier.delivery_timeline: one row per attempt, nothing for deliveries never attempted.
    timeline = db.rows("SELECT * FROM courier.delivery_timeline ORDER BY delivery_id, attempt")
    rows = {(r["event_id"], r["attempt"], r["status_code"], r["outcome"], r["error_class"], r["retryable"], r["worker"])
            for r in timeline}
    assert rows == {
        (ok_events[0], 1, 200, "delivered", None, False, "d1"),
        (ok_events[1], 1, 200, "delivered", None, False, "d1"),
        (dead_event, 1, 500, "http_error", "transient", True, "d1"),
        (retry_event, 1, 502, "http_error", "transient", True, "d1"),
    }, timeline
    dead_row = next(r for r in timeline if r["event_id"] == dead_event)
    assert (dead_row["delivery_id"], dead_row["subscription_id"], dead_row["tenant_id"]) == (dead["id"], sub_dead, "acme")
    assert dead_row["duration_ms"] >= 0 and "500" in dead_row["error_summary"]

    # pgcourierctl status: the same counts as the database.
    out = ctl("status").stdout
    counts = {m.group(1): (int(m.group(2)), int(m.group(3)))
              for m in re.finditer(r"^(\w+)\s+(\d+)\s+(\d+)", out, re.M)}
    assert counts == {"delivered": (2, 0), "dead_lettered": (1, 0), "retry_scheduled": (1, 0),
                      "pending": (2, 1)}, out
    expected = {status: n for status, n in db.statuses().items()}
    assert {s: c[0] for s, c in counts.items()} == expected, out
    # Subscriptions needing attention are listed: paused, failing.
    attention = out[out.index("subscriptions paused, disabled or failing"):] if \
        "subscriptions paused, disabled or failing" in out else ""
    for sub in (sub_paused, sub_dead, sub_retry):
        assert sub in attention, out
    for sub in (sub_ok, sub_globex):
        assert sub not in attention, out
