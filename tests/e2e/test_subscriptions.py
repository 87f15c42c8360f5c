"""End to end: the controls operators use to trust a subscription: Retry-After, 410 Gone,
per-subscription limits, the circuit breaker, (auto-)pause and resume, FIFO ordering, replay.
The tests drive them through the SQL functions directly, not through pgcourierctl."""
import json
import time

from conftest import policy, wait_for

TERMINAL = ("delivered", "failed", "dead_lettered")


def summary(attempts):
    return [(a["attempt"], a["status_code"], a["outcome"], a["error_class"], a["retryable"]) for a in attempts]


def set_subscription(db, sub_id, **columns):
    assignments = ", ".join(f"{name} = %s" for name in columns)
    db.query(f"UPDATE courier.subscriptions SET {assignments}, updated_at = now() WHERE id = %s",
             *columns.values(), sub_id)


def subscription(db, sub_id):
    return db.rows("SELECT * FROM courier.subscriptions WHERE id = %s", sub_id)[0]


def publish_together(db, events):
    """events: [(event_type, payload dict, ordering_key or None)], published in one transaction; returns ids."""
    db.conn.autocommit = False
    try:
        with db.conn.cursor() as cur:
            ids = []
            for event_type, payload, ordering_key in events:
                cur.execute("SELECT courier.publish('acme', %s, %s::jsonb, NULL, NULL, %s)",
                            (event_type, json.dumps(payload), ordering_key))
                ids.append(cur.fetchone()[0])
        db.conn.commit()
    finally:
        db.conn.autocommit = True
    return ids


def held(db, delivery_id):
    """True when the delivery waits for a resume: unfinished, next_attempt_at = 'infinity'."""
    return db.value("SELECT status IN ('pending', 'retry_scheduled') AND next_attempt_at = 'infinity' "
                    "FROM courier.deliveries WHERE id = %s", delivery_id)


def all_finished(db, event_ids):
    return all(db.delivery(e)["status"] in TERMINAL for e in event_ids)


# Retry-After -----------------------------------------------------------------------------------------

def first_then_ok(status, retry_after):
    """Answers status with Retry-After on the first request of each webhook-id, then 200."""
    def respond(hit):
        if hit["attempt_seen"] == 1:
            return status, {"Retry-After": retry_after}, 0
        return 200, {}, 0
    return respond


def test_retry_after_on_429_and_503_delays_the_retry_beyond_the_backoff(
        db, make_scripted_receiver, create_subscription, daemon_factory, write_policies):
    policies = write_policies({"default": policy(max_attempts=3, base="100ms", cap="10s")})
    receivers = {429: make_scripted_receiver(first_then_ok(429, "2")),
                 503: make_scripted_receiver(first_then_ok(503, "2"))}
    subs = {code: create_subscription(r.url("/limited"))[0] for code, r in receivers.items()}
    daemon_factory("d1", policies_file=policies, poll_interval="100ms")
    event_id = db.publish("acme", "order.created", "{}")

    wait_for(lambda: all(db.delivery(event_id, s)["status"] in TERMINAL for s in subs.values()),
             timeout=10, what="the deliveries to finish")
    for code, sub_id in subs.items():
        d = db.delivery(event_id, sub_id)
        assert d["status"] == "delivered", (code, d)
        attempts = db.attempts(d["id"])
        assert summary(attempts) == [(1, code, "http_error", "rate_limited", True), (2, 200, "delivered", None, False)]
        assert "Retry-After: 2" in attempts[0]["error_summary"], attempts[0]
        hits = receivers[code].hits
        assert len(hits) == 2
        gap = hits[1]["arrived_at"] - hits[0]["arrived_at"]
        # The policy would have retried after ~100 ms; the receiver asked for 2 s.
        assert 2.0 <= gap < 4.0, f"{code}: retry came {gap:.3f}s after the first attempt"


def test_a_retry_after_longer_than_the_backoff_cap_is_cut_to_the_cap(
        db, make_scripted_receiver, create_subscription, daemon_factory, write_policies):
    policies = write_policies({"default": policy(max_attempts=3, base="100ms", cap="1s")})
    r = make_scripted_receiver(first_then_ok(429, "30"))
    sub_id, _ = create_subscription(r.url("/limited"))
    daemon_factory("d1", policies_file=policies, poll_interval="100ms")
    event_id = db.publish("acme", "order.created", "{}")

    wait_for(lambda: db.delivery(event_id)["status"] in TERMINAL, timeout=10, what="the delivery to finish")
    d = db.delivery(event_id)
    assert d["status"] == "delivered" and d["attempts"] == 2, d
    assert db.attempts(d["id"])[0]["error_class"] == "rate_limited"
    gap = r.hits[1]["arrived_at"] - r.hits[0]["arrived_at"]
    assert 0.95 <= gap < 2.5, f"retry came {gap:.3f}s after the first attempt (Retry-After 30 s, cap 1 s)"


# 410 Gone --------------------------------------------------------------------------------------------

def test_410_gone_fails_the_delivery_and_disables_the_subscription(
        db, receiver, create_subscription, daemon_factory):
    gone_sub, _ = create_subscription(receiver.url("/status/410"))
    ok_sub, _ = create_subscription(receiver.url("/ok"))
    daemon_factory("d1", poll_interval="100ms")
    first = db.publish("acme", "order.created", "{}")

    wait_for(lambda: db.delivery(first, gone_sub)["status"] in TERMINAL, what="the delivery to finish")
    d = db.delivery(first, gone_sub)
    assert d["status"] == "failed" and d["attempts"] == 1 and d["last_status_code"] == 410, d
    assert summary(db.attempts(d["id"])) == [(1, 410, "http_error", "validation", False)]
    wait_for(lambda: not subscription(db, gone_sub)["active"], timeout=5, what="the subscription to be disabled")
    s = subscription(db, gone_sub)
    assert s["disabled_at"] is not None and "410" in s["disabled_reason"], s
    assert db.value("SELECT state FROM courier.subscription_health WHERE subscription_id = %s", gone_sub) == "disabled"

    later = db.publish("acme", "order.created", "{}")
    wait_for(lambda: db.delivery(later, ok_sub)["status"] == "delivered", what="the other subscription's delivery")
    assert db.value("SELECT count(*) FROM courier.deliveries WHERE subscription_id = %s", gone_sub) == 1
    assert len(receiver.hits_for("/status/410")) == 1
    assert subscription(db, ok_sub)["active"]


# Limits ------------------------------------------------------------------------------------------------

def test_max_in_flight_caps_concurrent_requests_without_spending_attempts(
        db, make_scripted_receiver, create_subscription, daemon_factory, write_policies):
    policies = write_policies({"default": policy(connect="1s", request="5s")})
    r = make_scripted_receiver()
    sub_id, _ = create_subscription(r.url("/hang/1"))
    set_subscription(db, sub_id, max_in_flight=2)
    daemon_factory("d1", policies_file=policies, poll_interval="100ms", shutdown_grace="5s")
    events = publish_together(db, [("order.created", {"n": i}, None) for i in range(6)])

    wait_for(lambda: all_finished(db, events), timeout=15, what="the deliveries to finish")
    assert [db.delivery(e)["status"] for e in events] == ["delivered"] * 6
    assert r.max_active == 2, f"{r.max_active} requests were in flight at once (max_in_flight 2)"
    assert sorted(h["webhook_id"] for h in r.hits) == sorted(events)
    for e in events:
        d = db.delivery(e)
        assert d["attempts"] == 1 and len(db.attempts(d["id"])) == 1, d


def test_rate_limit_spreads_requests_without_spending_attempts(
        db, make_scripted_receiver, create_subscription, daemon_factory):
    r = make_scripted_receiver()
    sub_id, _ = create_subscription(r.url("/ok"))
    set_subscription(db, sub_id, rate_limit_per_second=5, rate_limit_burst=1)
    daemon_factory("d1", poll_interval="100ms")
    events = publish_together(db, [("order.created", {"n": i}, None) for i in range(10)])

    wait_for(lambda: all_finished(db, events), timeout=15, what="the deliveries to finish")
    assert [db.delivery(e)["status"] for e in events] == ["delivered"] * 10
    for e in events:
        d = db.delivery(e)
        assert d["attempts"] == 1 and len(db.attempts(d["id"])) == 1, d
    arrivals = [h["arrived_at"] for h in r.hits]
    assert len(arrivals) == 10
    span = arrivals[-1] - arrivals[0]
    # Burst 1: the first goes at once, the other 9 one token (200 ms) apart.
    assert span >= 1.6, f"10 requests at 5/s (burst 1) arrived within {span:.2f}s"
    gaps = [round(b - a, 3) for a, b in zip(arrivals, arrivals[1:])]
    assert min(gaps) >= 0.1, f"requests closer than the rate allows: {gaps}"


# Circuit breaker ------------------------------------------------------------------------------------

def test_an_open_circuit_holds_requests_for_the_cooldown_then_lets_one_probe_through(
        db, make_scripted_receiver, create_subscription, daemon_factory, write_policies):
    policies = write_policies({"default": policy(max_attempts=10, base="100ms", cap="400ms",
                                                 circuit_breaker={"failures": 3, "cooldown": "2s"})})
    sick = make_scripted_receiver(lambda hit: (500, {}, 0))
    healthy = make_scripted_receiver()
    sick_sub, _ = create_subscription(sick.url("/a"), events="order.*")
    healthy_sub, _ = create_subscription(healthy.url("/b"), events="invoice.*")
    d1 = daemon_factory("d1", policies_file=policies, poll_interval="100ms")
    events = publish_together(db, [("order.created", {"n": i}, None) for i in range(4)])

    wait_for(lambda: "circuit opened" in d1.log(), timeout=5, what="the circuit to open")
    # Another endpoint is not affected by this one's open circuit.
    other = db.publish("acme", "invoice.paid", "{}")
    wait_for(lambda: db.delivery(other)["status"] == "delivered", timeout=1.5,
             what="a delivery to a healthy endpoint while another's circuit is open")

    wait_for(lambda: len(sick.hits) >= 6, timeout=8, what="two probes after the initial failures")
    time.sleep(0.3)  # nothing else should arrive right after the second probe
    arrivals = [h["arrived_at"] for h in sick.hits]
    t0 = arrivals[0]
    offsets = [round(a - t0, 3) for a in arrivals]
    assert len(arrivals) == 6, f"expected 4 first attempts then one probe per cooldown, got arrivals at {offsets}"
    assert arrivals[3] - t0 < 1.0, offsets
    assert arrivals[4] - arrivals[3] >= 1.9, f"a request reached the endpoint while its circuit was open: {offsets}"
    assert arrivals[5] - arrivals[4] >= 1.9, f"the failed probe did not re-open the circuit: {offsets}"

    rows = [db.delivery(e, sick_sub) for e in events]
    # Rescheduled, not burnt: without the circuit ~4 s of 100-400 ms backoff would be ~10 attempts each.
    assert sum(d["attempts"] for d in rows) == 6, [(d["attempts"], d["status"]) for d in rows]
    assert all(d["status"] in ("retry_scheduled", "delivering") for d in rows), [d["status"] for d in rows]
    assert sum(len(db.attempts(d["id"])) for d in rows) == 6
    assert "circuit opened" in d1.log()


def test_a_probe_held_back_by_the_rate_limit_does_not_wedge_the_circuit(
        db, make_scripted_receiver, create_subscription, daemon_factory, write_policies):
    # The circuit opens after one failure for 500 ms; the subscription may send one request per 2 s.
    # When the cooldown ends the rate limit still says wait: the probe must simply go out later.
    policies = write_policies({"default": policy(max_attempts=5, base="100ms", cap="400ms",
                                                 circuit_breaker={"failures": 1, "cooldown": "500ms"})})
    r = make_scripted_receiver(lambda hit: (500, {}, 0) if hit["attempt_seen"] == 1 else (200, {}, 0))
    sub_id, _ = create_subscription(r.url("/a"))
    set_subscription(db, sub_id, rate_limit_per_second=0.5, rate_limit_burst=1)
    d1 = daemon_factory("d1", policies_file=policies, poll_interval="100ms")
    event_id = db.publish("acme", "order.created", "{}")

    wait_for(lambda: "circuit opened" in d1.log(), timeout=5, what="the circuit to open")
    # The next token comes ~2 s after the first request; allow generous slack.
    deadline = time.monotonic() + 6
    while db.delivery(event_id)["status"] not in TERMINAL and time.monotonic() < deadline:
        time.sleep(0.05)
    d = db.delivery(event_id)
    assert d["status"] == "delivered" and d["attempts"] == 2, \
        f"6 s later: {d['status']} after {d['attempts']} attempt(s), last_error {d['last_error']!r}, " \
        f"{len(r.hits)} request(s) sent"
    gap = r.hits[1]["arrived_at"] - r.hits[0]["arrived_at"]
    assert gap >= 1.8, f"the retry came {gap:.2f}s after the first request (rate 0.5/s)"


def test_circuit_breaker_messages_do_not_reveal_url_credentials(
        db, make_scripted_receiver, create_subscription, daemon_factory, write_policies):
    policies = write_policies({"default": policy(max_attempts=5, base="100ms", cap="200ms",
                                                 circuit_breaker={"failures": 1, "cooldown": "3s"})})
    r = make_scripted_receiver(lambda hit: (500, {}, 0))
    # user:password@ is refused at the door (pgcourierctl and courier.check_endpoint_url); a query token is the
    # credential a URL can still carry, and one written with the checks off must not leak either.
    sub_id, _ = create_subscription(f"http://127.0.0.1:{r.port}/a?token=tok3n")
    db.unchecked("UPDATE courier.subscriptions SET url = %s WHERE id = %s",
                 f"http://hookuser:s3cr3t-pw@127.0.0.1:{r.port}/a?token=tok3n", sub_id)
    d1 = daemon_factory("d1", policies_file=policies, poll_interval="100ms")
    event_id = db.publish("acme", "order.created", "{}")

    wait_for(lambda: "circuit opened" in d1.log(), timeout=5, what="the circuit to open")
    # The retry after ~100 ms meets the open circuit and is put back to wait, with a reason.
    wait_for(lambda: "circuit" in (db.delivery(event_id)["last_error"] or ""), timeout=3,
             what="the delivery to wait for the circuit")
    leaks = [f"deliveries.last_error: {text}" for text in [db.delivery(event_id)["last_error"]]
             if "s3cr3t-pw" in text or "tok3n" in text]
    leaks += [f"daemon log: {line}" for line in d1.log().splitlines() if "s3cr3t-pw" in line or "tok3n" in line]
    assert leaks == [], "URL credentials revealed:\n" + "\n".join(leaks)


# Pause, auto-pause, resume ---------------------------------------------------------------------------

def test_consecutive_failures_pause_the_subscription_and_resume_delivers_what_was_held(
        db, receiver, create_subscription, daemon_factory, write_policies):
    policies = write_policies({"default": policy(max_attempts=10, base="100ms", cap="200ms",
                                                 auto_pause={"consecutive_failures": 3})})
    sub_id, _ = create_subscription(receiver.url("/status/500"))
    daemon_factory("d1", policies_file=policies, poll_interval="100ms")
    first = db.publish("acme", "order.created", '{"n": 1}')

    wait_for(lambda: subscription(db, sub_id)["paused_at"] is not None, timeout=10,
             what="the subscription to be paused")
    s = subscription(db, sub_id)
    assert "consecutive" in s["pause_reason"], s["pause_reason"]
    assert s["consecutive_failures"] >= 3 and s["active"], s
    d = db.delivery(first)
    wait_for(lambda: held(db, d["id"]), timeout=3, what="the failing delivery to be held")
    d = db.delivery(first)
    assert d["status"] == "retry_scheduled" and 3 <= d["attempts"] < 10, d

    second = db.publish("acme", "order.created", '{"n": 2}')
    held_second = db.delivery(second)
    assert held(db, held_second["id"]), held_second
    hits_when_paused = len(receiver.hits)
    time.sleep(1.0)
    assert len(receiver.hits) == hits_when_paused, "requests were sent for a paused subscription"
    assert db.delivery(first)["attempts"] == d["attempts"]
    assert db.delivery(second)["attempts"] == 0 and db.delivery(second)["status"] == "pending"
    health = db.rows("SELECT * FROM courier.subscription_health WHERE subscription_id = %s", sub_id)[0]
    assert health["state"] == "paused" and health["held_deliveries"] == 2, health

    set_subscription(db, sub_id, url=receiver.url("/ok"))
    assert db.value("SELECT courier.resume_subscription(%s)", sub_id) == 2
    s = subscription(db, sub_id)
    assert s["paused_at"] is None and s["pause_reason"] is None, s
    assert s["consecutive_failures"] == 0 and s["failing_since"] is None, s
    wait_for(lambda: all(db.delivery(e)["status"] == "delivered" for e in (first, second)), timeout=5,
             what="the held deliveries to be delivered after the resume")
    assert db.delivery(first)["attempts"] == d["attempts"] + 1
    assert db.delivery(second)["attempts"] == 1
    assert {h["headers"]["webhook-id"] for h in receiver.hits_for("/ok")} == {first, second}


def test_a_manually_paused_subscription_holds_new_deliveries_until_resumed(
        db, receiver, create_subscription, daemon_factory):
    sub_id, _ = create_subscription(receiver.url("/ok"))
    daemon_factory("d1", poll_interval="100ms")
    assert db.value("SELECT courier.pause_subscription(%s)", sub_id) is True
    assert db.value("SELECT courier.pause_subscription('sub_does_not_exist')") is False
    assert subscription(db, sub_id)["pause_reason"] == "paused by an operator"
    events = [db.publish("acme", "order.created", f'{{"n": {i}}}') for i in range(2)]

    time.sleep(1.0)
    assert receiver.hits == [], "a paused subscription received requests"
    for e in events:
        d = db.delivery(e)
        assert d["status"] == "pending" and d["attempts"] == 0 and held(db, d["id"]), d
        assert db.attempts(d["id"]) == []

    assert db.value("SELECT courier.resume_subscription(%s)", sub_id) == 2
    wait_for(lambda: all(db.delivery(e)["status"] == "delivered" for e in events), timeout=5,
             what="the held deliveries to be delivered after the resume")
    assert sorted(h["headers"]["webhook-id"] for h in receiver.hits) == sorted(events)
    assert all(db.delivery(e)["attempts"] == 1 for e in events)


# FIFO ordering ---------------------------------------------------------------------------------------

def test_fifo_keeps_each_keys_order_through_a_retry_without_blocking_other_keys(
        db, make_scripted_receiver, create_subscription, daemon_factory, write_policies):
    # The first delivery of key k1 and of the explicitly keyed events fails once; the retry waits 1 s.
    fail_once = {("k1", 0), ("explicit", 0)}

    def respond(hit):
        data = hit["data"] or {}
        if (data.get("tag"), data.get("seq")) in fail_once and hit["attempt_seen"] == 1:
            return 500, {}, 0
        return 200, {}, 0
    r = make_scripted_receiver(respond)
    policies = write_policies({"default": policy(max_attempts=5, base="1s", cap="2s")})
    sub_id, _ = create_subscription(r.url("/fifo"))
    set_subscription(db, sub_id, ordering="fifo", ordering_key_field="order_id")
    daemon_factory("d1", policies_file=policies, poll_interval="100ms")

    keys = ["k1", "k2", "k3"]
    plan = []
    for seq in range(5):
        for key in keys:
            plan.append(("order.updated", {"order_id": key, "seq": seq, "tag": key}, None))
        # Keyed by courier.publish's 6th argument, which wins over the payload field.
        plan.append(("order.updated", {"order_id": "decoy", "seq": seq, "tag": "explicit"}, "explicit"))
    events = publish_together(db, plan)

    wait_for(lambda: all_finished(db, events), timeout=15, what="the deliveries to finish")
    assert [db.delivery(e)["status"] for e in events] == ["delivered"] * len(events)
    stored_keys = dict(db.query("SELECT event_id, ordering_key FROM courier.deliveries"))
    assert [stored_keys[e] for e in events] == [p[2] or p[1]["order_id"] for p in plan]

    per_key = {}
    for h in r.hits:
        per_key.setdefault(h["data"]["tag"], []).append(h)
    for key in keys + ["explicit"]:
        sent = [(h["data"]["seq"], h["status"]) for h in per_key[key]]
        expected = [(s, 200) for s in range(5)]
        if (key, 0) in fail_once:
            expected = [(0, 500)] + expected   # nothing later of this key went out while seq 0 waited
        assert sent == expected, f"key {key}: arrivals {sent}"
    retried_at = per_key["k1"][1]["arrived_at"]
    for key in ("k2", "k3"):
        assert per_key[key][-1]["arrived_at"] < retried_at, f"key {key} waited for key k1's retry"


# Replay ------------------------------------------------------------------------------------------------

def test_replay_requeues_a_dead_lettered_delivery_with_a_fresh_budget_keeping_its_attempts(
        db, receiver, make_receiver, create_subscription, daemon_factory, write_policies):
    policies = write_policies({"default": policy(max_attempts=2, base="100ms")})
    dead_sub, _ = create_subscription(receiver.url("/status/500"))
    other = make_receiver()
    ok_sub, _ = create_subscription(other.url("/ok"))
    daemon_factory("d1", policies_file=policies, poll_interval="100ms")
    event_id = db.publish("acme", "order.created", "{}")

    wait_for(lambda: db.delivery(event_id, dead_sub)["status"] == "dead_lettered", what="the dead letter")
    wait_for(lambda: db.delivery(event_id, ok_sub)["status"] == "delivered", what="the other delivery")
    set_subscription(db, dead_sub, url=receiver.url("/ok"))
    assert db.value("SELECT courier.replay_deliveries(subscription_id => %s, dry_run => true)", dead_sub) == 1
    assert db.delivery(event_id, dead_sub)["status"] == "dead_lettered"  # a dry run changes nothing
    assert db.value("SELECT courier.replay_deliveries(subscription_id => %s)", dead_sub) == 1

    wait_for(lambda: db.delivery(event_id, dead_sub)["status"] in TERMINAL, what="the replayed delivery")
    d = db.delivery(event_id, dead_sub)
    assert d["status"] == "delivered" and d["attempts"] == 3 and d["attempt_budget_base"] == 2, d
    assert [(a["attempt"], a["status_code"], a["outcome"]) for a in db.attempts(d["id"])] == \
        [(1, 500, "http_error"), (2, 500, "http_error"), (3, 200, "delivered")]
    assert len(receiver.hits_for("/ok", msg_id=event_id)) == 1

    # A delivered delivery is replayed only on request.
    assert db.value("SELECT courier.replay_deliveries(subscription_id => %s)", ok_sub) == 0
    time.sleep(0.3)
    assert db.delivery(event_id, ok_sub)["attempts"] == 1 and len(other.hits) == 1
    assert db.value("SELECT courier.replay_deliveries(subscription_id => %s, include_delivered => true)", ok_sub) == 1
    wait_for(lambda: len(other.hits) == 2, what="the replayed delivered delivery to be sent again")
    wait_for(lambda: db.delivery(event_id, ok_sub)["status"] == "delivered" and
             db.delivery(event_id, ok_sub)["attempts"] == 2, what="the second delivery to be recorded")
    assert [a["attempt"] for a in db.attempts(db.delivery(event_id, ok_sub)["id"])] == [1, 2]
