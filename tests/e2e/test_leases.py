"""Heartbeat leases (issue 15): a lease is short and renewed while its request is in flight, so a live
daemon keeps its slow requests and a killed daemon's work comes back within a lease, whatever the
policy's request timeout."""
import signal

from conftest import policy, wait_for
from test_shutdown import endpoints, in_flight


def test_a_live_daemon_keeps_requests_that_outlast_many_leases(
        db, make_receiver, create_subscription, daemon_factory, write_policies):
    # 1 s leases, a receiver that takes 4 s, and a second daemon looking for expired leases every 200 ms.
    policies = write_policies({"default": policy(max_attempts=3, connect="1s", request="30s")})
    d1 = daemon_factory("d1", policies_file=policies, poll_interval="100ms", lease_duration="1s")
    eps = endpoints(3, "/hang/4", make_receiver, create_subscription, db)
    wait_for(lambda: in_flight(db, eps, "/hang/4", "d1"), what="3 requests in flight")
    daemon_factory("d2", policies_file=policies, poll_interval="100ms", lease_duration="1s",
                   rescue_interval="200ms")
    wait_for(lambda: all(db.delivery(e)["status"] == "delivered" for _, _, e in eps), timeout=15,
             what="the slow deliveries to complete")
    for r, _, e in eps:
        attempts = db.attempts(db.delivery(e)["id"])
        # One attempt, by the daemon that sent it: the lease was renewed, never taken over.
        assert [(a["attempt"], a["outcome"], a["worker"]) for a in attempts] == [(1, "delivered", "d1")], attempts
        assert len(r.hits_for("/hang/4", msg_id=e)) == 1


def test_kill_9_work_comes_back_within_a_lease_even_with_a_30_second_request_timeout(
        db, make_receiver, create_subscription, daemon_factory, write_policies):
    policies = write_policies({"default": policy(max_attempts=3, base="100ms", connect="1s", request="30s")})
    d1 = daemon_factory("d1", policies_file=policies, poll_interval="100ms", lease_duration="2s")
    eps = endpoints(3, "/hang/60", make_receiver, create_subscription, db)
    wait_for(lambda: in_flight(db, eps, "/hang/60", "d1"), what="3 requests in flight")
    d1.signal(signal.SIGKILL)
    assert d1.wait(timeout=5) == -signal.SIGKILL
    for r, sub_id, _ in eps:
        db.query("UPDATE courier.subscriptions SET url = %s WHERE id = %s", r.url("/ok"), sub_id)
    d2 = daemon_factory("d2", policies_file=policies, poll_interval="100ms", lease_duration="2s",
                        rescue_interval="200ms")
    # Well inside the 30 s the dead daemon's requests could have taken: a lease (2 s) and a rescue.
    wait_for(lambda: all(db.delivery(e)["status"] == "delivered" for _, _, e in eps), timeout=12,
             what="every delivery to be delivered by d2")
    for r, _, e in eps:
        attempts = db.attempts(db.delivery(e)["id"])
        assert [(a["attempt"], a["outcome"], a["worker"]) for a in attempts] == \
            [(1, "lease_expired", "d2"), (2, "delivered", "d2")], attempts
        assert "lease held by d1 expired" in attempts[0]["error_summary"]
    assert "lease" in d2.log()
