"""End to end: draining on SIGTERM, the grace period, and recovery after kill -9."""
import signal
import time

from conftest import policy, wait_for
from ops_helpers import metrics_daemon, metrics_port, probe


def endpoints(n, path, make_receiver, create_subscription, db):
    """n receivers, one subscription and one published event each: [(receiver, subscription id, event id)].

    One receiver per request in flight: requests to one host:port can queue behind each other inside the
    daemon's HTTP client (see test_concurrency.py), and these tests are about shutdown, not about that."""
    out = []
    for i in range(n):
        r = make_receiver()
        sub_id, _ = create_subscription(r.url(path), events=f"order.e{i}")
        out.append((r, sub_id))
    return [(r, sub_id, db.publish("acme", f"order.e{i}", f'{{"n": {i}}}')) for i, (r, sub_id) in enumerate(out)]


def in_flight(db, eps, path, owner):
    """True once every receiver has seen its event and every delivery is leased by owner."""
    for r, _, e in eps:
        if not r.hits_for(path, msg_id=e):
            return False
    return all(db.delivery(e)["status"] == "delivering" and db.delivery(e)["lease_owner"] == owner
               for _, _, e in eps)


def test_sigterm_drains_requests_in_flight_and_claims_nothing_new(
        db, receiver, make_receiver, create_subscription, daemon_factory, write_policies):
    policies = write_policies({"default": policy(connect="1s", request="5s")})
    create_subscription(receiver.url("/ok"), events="late")
    d1 = daemon_factory("d1", policies_file=policies, poll_interval="100ms", shutdown_grace="10s")
    eps = endpoints(3, "/hang/1", make_receiver, create_subscription, db)
    events = [e for _, _, e in eps]
    wait_for(lambda: in_flight(db, eps, "/hang/1", "d1"), what="3 requests in flight")

    started = time.monotonic()
    d1.signal(signal.SIGTERM)
    wait_for(lambda: "draining:" in d1.log(), timeout=5, what="d1 to start draining")
    late = db.publish("acme", "late", '{"n": "late"}')  # published while draining: not claimed
    assert d1.wait(timeout=10) == 0, d1.log()
    elapsed = time.monotonic() - started
    assert elapsed < 8, f"drain took {elapsed:.1f}s; the requests take 1s and the grace is 10s"

    assert "draining: 3 request(s) in flight" in d1.log()
    assert "grace period over" not in d1.log()
    for e in events:
        d = db.delivery(e)
        assert d["status"] == "delivered", d
        assert d["lease_owner"] is None
        assert [(a["attempt"], a["status_code"], a["outcome"], a["worker"]) for a in db.attempts(d["id"])] == \
            [(1, 200, "delivered", "d1")]
    late_delivery = db.delivery(late)
    assert late_delivery["status"] == "pending" and late_delivery["attempts"] == 0, late_delivery
    assert receiver.hits == []


def test_grace_period_over_aborts_and_releases_leases_for_another_daemon(
        db, make_receiver, create_subscription, daemon_factory, write_policies):
    policies = write_policies({"default": policy(connect="1s", request="10s")})
    d1 = daemon_factory("d1", policies_file=policies, poll_interval="100ms", shutdown_grace="300ms")
    eps = endpoints(2, "/hang/5", make_receiver, create_subscription, db)
    events = [e for _, _, e in eps]
    wait_for(lambda: in_flight(db, eps, "/hang/5", "d1"), what="2 requests in flight")

    started = time.monotonic()
    d1.signal(signal.SIGTERM)
    assert d1.wait(timeout=10) == 0, d1.log()
    elapsed = time.monotonic() - started
    # The whole stop fits in the grace: a quarter of it (75 ms) is the window to write the releases.
    assert 0.2 <= elapsed < 3, f"d1 exited {elapsed:.2f}s after SIGTERM (grace 300ms; the receiver hangs 5s)"
    assert "grace period over: aborting 2 request(s)" in d1.log()

    for e in events:
        d = db.delivery(e)
        assert d["status"] == "pending", d  # released, not stuck in 'delivering' until the lease expires
        assert d["lease_owner"] is None and d["lease_expires_at"] is None and d["attempts"] == 0, d
        assert "released by d1" in (d["last_error"] or ""), d
        assert db.attempts(d["id"]) == []
    assert db.value("SELECT count(*) FROM courier.deliveries WHERE next_attempt_at > now()") == 0

    for r, sub_id, _ in eps:
        db.query("UPDATE courier.subscriptions SET url = %s WHERE id = %s", r.url("/ok"), sub_id)
    daemon_factory("d2", policies_file=policies, poll_interval="100ms")
    wait_for(lambda: all(db.delivery(e)["status"] == "delivered" for e in events), timeout=10,
             what="d2 to deliver the released deliveries")
    for r, _, e in eps:
        assert [(a["attempt"], a["status_code"], a["outcome"], a["worker"]) for a in db.attempts(db.delivery(e)["id"])] \
            == [(1, 200, "delivered", "d2")]
        assert len(r.hits_for("/ok", msg_id=e)) == 1


def test_kill_9_mid_flight_leases_expire_and_another_daemon_delivers_everything(
        db, make_receiver, create_subscription, daemon_factory, write_policies):
    # 2 s leases, renewed while d1 lives
    policies = write_policies({"default": policy(max_attempts=3, base="100ms", connect="1s", request="1s")})
    d1 = daemon_factory("d1", policies_file=policies, poll_interval="100ms", lease_duration="2s")
    assert "lease 2000 ms" in d1.log()
    eps = endpoints(3, "/hang/3", make_receiver, create_subscription, db)
    events = [e for _, _, e in eps]
    wait_for(lambda: in_flight(db, eps, "/hang/3", "d1"), what="3 requests in flight")

    d1.signal(signal.SIGKILL)
    assert d1.wait(timeout=5) == -signal.SIGKILL
    # Nothing was recorded: the deliveries are still leased by the dead daemon.
    for e in events:
        d = db.delivery(e)
        assert d["status"] == "delivering" and d["lease_owner"] == "d1" and d["attempts"] == 0, d

    for r, sub_id, _ in eps:
        db.query("UPDATE courier.subscriptions SET url = %s WHERE id = %s", r.url("/ok"), sub_id)
    d2 = daemon_factory("d2", policies_file=policies, poll_interval="100ms", lease_duration="2s",
                        rescue_interval="200ms")
    wait_for(lambda: all(db.delivery(e)["status"] == "delivered" for e in events), timeout=15,
             what="every delivery to be delivered by d2")

    assert db.statuses() == {"delivered": 3}
    for r, _, e in eps:
        d = db.delivery(e)
        attempts = db.attempts(d["id"])
        assert [(a["attempt"], a["outcome"], a["error_class"], a["retryable"], a["worker"]) for a in attempts] == \
            [(1, "lease_expired", "transient", True, "d2"), (2, "delivered", None, False, "d2")], attempts
        assert "lease held by d1 expired" in attempts[0]["error_summary"]
        assert attempts[1]["status_code"] == 200
        assert len(r.hits_for("/ok", msg_id=e)) == 1
    assert "recovered" in d2.log() and "lease expired" in d2.log()


def test_an_idle_daemon_serving_metrics_exits_within_half_a_second_of_sigterm(daemon_factory):
    """The HTTP server of /metrics (civetweb) used to notice its stop only when its listening thread's poll
    timed out (every 2 s): every exit then waited up to 2 s more, past shutdown_grace. Three stops at
    different moments of that 2 s cycle (by luck, all three under half a second about once in 64 runs)."""
    stops = []
    for i in range(3):
        d = metrics_daemon(daemon_factory, f"m{i}")
        assert probe(metrics_port(d), "/healthz")[0] == 200
        time.sleep(0.3 + 0.5 * i)
        at = time.monotonic()
        d.signal(signal.SIGTERM)
        assert d.wait(timeout=10) == 0, d.log()[-2000:]
        stops.append(time.monotonic() - at)
    assert max(stops) < 0.5, f"SIGTERM to exit took {[round(s, 3) for s in stops]} s"
