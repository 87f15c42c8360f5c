"""End to end: how HTTP results are classified, retried, failed and dead-lettered."""
import json
import time

from conftest import policy, wait_for

TERMINAL = ("delivered", "failed", "dead_lettered")


def summary(attempts):
    return [(a["attempt"], a["status_code"], a["outcome"], a["error_class"], a["retryable"]) for a in attempts]


def test_500_then_200_is_delivered_on_the_second_attempt_after_the_backoff(
        db, receiver, create_subscription, daemon_factory, write_policies):
    base_s, jitter = 0.3, 0.1
    policies = write_policies({"default": policy(max_attempts=3, base="300ms", jitter=jitter)})
    create_subscription(receiver.url("/flaky/1"))
    daemon_factory("d1", policies_file=policies, poll_interval="100ms")
    event_id = db.publish("acme", "order.created", '{"n": 1}')

    wait_for(lambda: db.delivery(event_id)["status"] in TERMINAL, what="the delivery to finish")
    d = db.delivery(event_id)
    assert d["status"] == "delivered", d
    assert d["attempts"] == 2 and d["last_status_code"] == 200 and d["lease_owner"] is None
    attempts = db.attempts(d["id"])
    assert summary(attempts) == [(1, 500, "http_error", "transient", True), (2, 200, "delivered", None, False)]
    assert "HTTP 500" in attempts[0]["error_summary"]
    assert {a["worker"] for a in attempts} == {"d1"}

    hits = receiver.hits_for("/flaky/1")
    assert [h["status"] for h in hits] == [500, 200]
    assert [h["headers"]["webhook-id"] for h in hits] == [event_id, event_id]
    gap = hits[1]["arrived_at"] - hits[0]["arrived_at"]
    # The delay after attempt 1 is base * (1 +/- jitter): the retry may not come earlier than that.
    assert gap >= base_s * (1 - jitter), f"retry came {gap:.3f}s after the first attempt"
    assert gap < 3.0, f"retry came {gap:.3f}s after the first attempt (backoff is ~{base_s}s)"


def test_always_500_is_dead_lettered_after_max_attempts_with_the_event_intact(
        db, receiver, create_subscription, daemon_factory, write_policies):
    max_attempts = 3
    policies = write_policies({"default": policy(max_attempts=max_attempts, base="100ms")})
    sub_id, _ = create_subscription(receiver.url("/status/500"))
    daemon_factory("d1", policies_file=policies, poll_interval="100ms")
    payload = {"order_id": 7, "items": ["a", "b"], "note": "caf\u00e9"}
    event_id = db.publish("acme", "order.created", json.dumps(payload), idempotency_key="k-7")

    wait_for(lambda: db.delivery(event_id)["status"] in TERMINAL, what="the delivery to finish")
    d = db.delivery(event_id)
    assert d["status"] == "dead_lettered", d
    assert d["attempts"] == max_attempts and d["last_status_code"] == 500
    assert "HTTP 500" in d["last_error"] and d["completed_at"] is not None
    attempts = db.attempts(d["id"])
    assert summary(attempts) == [(n, 500, "http_error", "transient", True) for n in range(1, max_attempts + 1)]
    assert len(receiver.hits_for("/status/500")) == max_attempts

    assert db.query("SELECT tenant_id, event_type, payload, idempotency_key FROM courier.events WHERE id = %s",
                    event_id) == [("acme", "order.created", payload, "k-7")]
    dead = db.rows("SELECT * FROM courier.dead_letters WHERE delivery_id = %s", d["id"])
    assert len(dead) == 1, dead
    assert dead[0]["event_id"] == event_id and dead[0]["payload"] == payload
    assert dead[0]["subscription_id"] == sub_id and dead[0]["attempts"] == max_attempts
    assert dead[0]["last_status_code"] == 500 and dead[0]["dead_lettered_at"] is not None

    time.sleep(0.4)  # several poll intervals: a dead-lettered delivery is never attempted again
    assert len(receiver.hits_for("/status/500")) == max_attempts
    assert len(db.attempts(d["id"])) == max_attempts


def test_a_hanging_receiver_times_out_is_retried_and_dead_lettered(
        db, receiver, create_subscription, daemon_factory, write_policies):
    policies = write_policies({"default": policy(max_attempts=2, base="100ms", connect="500ms", request="500ms")})
    create_subscription(receiver.url("/hang/5"))
    daemon_factory("d1", policies_file=policies, poll_interval="100ms", shutdown_grace="500ms")
    event_id = db.publish("acme", "order.created", "{}")

    wait_for(lambda: db.delivery(event_id)["status"] in TERMINAL, timeout=10, what="the delivery to finish")
    d = db.delivery(event_id)
    assert d["status"] == "dead_lettered", d
    assert d["attempts"] == 2 and d["last_status_code"] is None
    attempts = db.attempts(d["id"])
    assert summary(attempts) == [(1, None, "timeout", "transient", True), (2, None, "timeout", "transient", True)]
    for a in attempts:
        assert 400 <= a["duration_ms"] < 2000, a
        assert "timed out" in a["error_summary"].lower(), a
    assert len(receiver.hits_for("/hang/5")) == 2


def test_4xx_fails_at_once_without_retry(db, receiver, create_subscription, daemon_factory):
    codes = (400, 404, 422)
    subs = {code: create_subscription(receiver.url(f"/status/{code}"))[0] for code in codes}
    daemon_factory("d1", poll_interval="100ms")  # policies/local.yaml: default retries 408, 425, 429, 5xx
    event_id = db.publish("acme", "order.created", "{}")

    wait_for(lambda: all(db.delivery(event_id, s)["status"] in TERMINAL for s in subs.values()),
             what="the deliveries to finish")
    for code, sub_id in subs.items():
        d = db.delivery(event_id, sub_id)
        assert d["status"] == "failed", (code, d)
        assert d["attempts"] == 1 and d["last_status_code"] == code, d
        assert summary(db.attempts(d["id"])) == [(1, code, "http_error", "validation", False)]
        assert len(receiver.hits_for(f"/status/{code}")) == 1, code


def test_301_redirect_fails_and_is_not_followed(db, receiver, create_subscription, daemon_factory):
    # Record GETs too: curl turns a followed 301 POST into a GET, which the receiver would not record otherwise.
    receiver.server.RequestHandlerClass.do_GET = lambda handler: receiver._handle(handler, b"")
    create_subscription(receiver.url("/redirect"))
    daemon_factory("d1", poll_interval="100ms")
    event_id = db.publish("acme", "order.created", "{}")

    wait_for(lambda: db.delivery(event_id)["status"] in TERMINAL, what="the delivery to finish")
    d = db.delivery(event_id)
    assert d["status"] == "failed", d
    assert d["attempts"] == 1 and d["last_status_code"] == 301
    attempts = db.attempts(d["id"])
    assert summary(attempts) == [(1, 301, "redirect", "validation", False)]
    assert "not followed" in attempts[0]["error_summary"]
    assert len(receiver.hits_for("/redirect")) == 1
    assert receiver.hits_for("/ok") == []
    assert [h["path"] for h in receiver.hits] == ["/redirect"]


def test_401_fails_as_an_auth_error_without_retry(db, receiver, create_subscription, daemon_factory):
    create_subscription(receiver.url("/status/401"))
    daemon_factory("d1", poll_interval="100ms")  # local default: 401 is not listed as retryable
    event_id = db.publish("acme", "order.created", "{}")

    wait_for(lambda: db.delivery(event_id)["status"] in TERMINAL, what="the delivery to finish")
    d = db.delivery(event_id)
    assert d["status"] == "failed", d
    assert summary(db.attempts(d["id"])) == [(1, 401, "http_error", "auth", False)]
    assert len(receiver.hits_for("/status/401")) == 1


def test_429_is_retried_as_rate_limited_then_dead_lettered(
        db, receiver, create_subscription, daemon_factory, write_policies):
    policies = write_policies({"default": policy(max_attempts=3, base="100ms"),
                               "twice": policy(max_attempts=2, base="100ms")})
    create_subscription(receiver.url("/status/429"), policy="twice")
    daemon_factory("d1", policies_file=policies, poll_interval="100ms")
    event_id = db.publish("acme", "order.created", "{}")

    wait_for(lambda: db.delivery(event_id)["status"] in TERMINAL, what="the delivery to finish")
    d = db.delivery(event_id)
    assert d["status"] == "dead_lettered", d
    assert d["attempts"] == 2 and d["last_status_code"] == 429
    assert summary(db.attempts(d["id"])) == [(1, 429, "http_error", "rate_limited", True),
                                             (2, 429, "http_error", "rate_limited", True)]
    assert len(receiver.hits_for("/status/429")) == 2
