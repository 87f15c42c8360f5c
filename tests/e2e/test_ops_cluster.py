"""End to end, operations: several daemons on one database: work shared with every delivery sent
exactly once, maintenance leadership moving to a survivor, daemons dedicated to some tenants."""
import collections
import signal
import time

from conftest import wait_for
from ops_helpers import publish_together


def test_three_daemons_share_600_deliveries_each_delivered_exactly_once(
        db, make_receiver, create_subscription, daemon_factory):
    receivers = [make_receiver() for _ in range(3)]
    subs = {create_subscription(r.url("/ok"), events=f"kind{i}.*")[0]: r for i, r in enumerate(receivers)}
    names = ["d1", "d2", "d3"]
    for name in names:
        daemon_factory(name, concurrency=16, max_claim_batch=16, poll_interval="100ms")
    events = []
    for batch in range(6):  # 6 transactions of 100 events, spread over the 3 subscriptions
        events += publish_together(db, [("acme", f"kind{n % 3}.created", f'{{"n": {batch * 100 + n}}}')
                                        for n in range(100)])
    assert len(events) == 600

    wait_for(lambda: db.statuses() == {"delivered": 600}, timeout=30, what="600 deliveries delivered")
    attempts = db.rows("SELECT a.delivery_id, a.attempt, a.outcome, a.status_code, a.worker "
                       "FROM courier.delivery_attempts a")
    assert len(attempts) == 600, f"{len(attempts)} attempt rows for 600 deliveries"
    assert len({a["delivery_id"] for a in attempts}) == 600
    assert {(a["attempt"], a["outcome"], a["status_code"]) for a in attempts} == {(1, "delivered", 200)}
    workers = collections.Counter(a["worker"] for a in attempts)
    assert set(workers) == set(names), f"attempts by worker: {dict(workers)}"

    # The receivers saw each delivery exactly once.
    hits = [h for r in receivers for h in r.hits]
    assert len(hits) == 600
    ids = collections.Counter((h["path"], h["headers"]["webhook-id"]) for r in receivers for h in r.hits)
    assert [k for k, n in ids.items() if n > 1] == [], "webhook-id delivered twice"
    for sub, r in subs.items():
        expected = {e for e, in db.query("SELECT event_id FROM courier.deliveries WHERE subscription_id = %s", sub)}
        assert len(expected) >= 198
        assert {h["headers"]["webhook-id"] for h in r.hits} == expected
    assert db.value("SELECT count(*) FROM courier.deliveries WHERE attempts <> 1") == 0
    assert db.value("SELECT count(*) FROM courier.delivery_queue") == 0


def test_maintenance_leadership_moves_to_the_survivor_when_the_leader_is_killed(
        db, receiver, create_subscription, daemon_factory):
    create_subscription(receiver.url("/ok"))
    daemons = [daemon_factory(name, rescue_interval="200ms", maintenance_interval="200ms", poll_interval="200ms")
               for name in ("d1", "d2")]
    leaders = wait_for(lambda: [d for d in daemons if "now runs maintenance" in d.log()], timeout=5,
                       what="a daemon to take maintenance leadership")
    time.sleep(1.0)  # several rescue intervals: the other keeps trying and must not also become leader
    leaders = [d for d in daemons if "now runs maintenance" in d.log()]
    assert len(leaders) == 1, "both daemons claim maintenance leadership"
    leader = leaders[0]
    survivor = next(d for d in daemons if d is not leader)
    assert f"this daemon ({leader.name}) now runs maintenance" in leader.log()

    leader.signal(signal.SIGKILL)
    leader.wait(timeout=5)
    killed = time.monotonic()
    wait_for(lambda: "now runs maintenance" in survivor.log(), timeout=3,
             what=f"{survivor.name} to take over maintenance within 3 s")
    assert f"this daemon ({survivor.name}) now runs maintenance" in survivor.log()
    assert time.monotonic() - killed < 3

    # The survivor still delivers.
    event = db.publish("acme", "order.created", "{}")
    wait_for(lambda: db.delivery(event)["status"] == "delivered", timeout=5, what="a delivery by the survivor")
    assert [a["worker"] for a in db.attempts(db.delivery(event)["id"])] == [survivor.name]


def test_a_daemon_scoped_to_a_tenant_leaves_other_tenants_to_an_unscoped_daemon(
        db, make_receiver, create_subscription, daemon_factory):
    acme_receiver, globex_receiver = make_receiver(), make_receiver()
    create_subscription(acme_receiver.url("/ok"), tenant="acme")
    create_subscription(globex_receiver.url("/ok"), tenant="globex")
    scoped = daemon_factory("acme-only", tenants="[acme]", poll_interval="100ms")
    acme_events = [db.publish("acme", "order.created", f'{{"n": {i}}}') for i in range(3)]
    globex_events = [db.publish("globex", "order.created", f'{{"n": {i}}}') for i in range(3)]

    wait_for(lambda: all(db.delivery(e)["status"] == "delivered" for e in acme_events), timeout=10,
             what="acme's deliveries")
    time.sleep(1.0)  # ten poll intervals and the NOTIFYs of globex's events: the scoped daemon must not claim them
    for e in globex_events:
        d = db.delivery(e)
        assert (d["status"], d["attempts"], d["lease_owner"]) == ("pending", 0, None), d
    assert globex_receiver.hits == []
    assert len(acme_receiver.hits) == 3

    daemon_factory("all-tenants", poll_interval="100ms")
    wait_for(lambda: all(db.delivery(e)["status"] == "delivered" for e in globex_events), timeout=10,
             what="globex's deliveries by the unscoped daemon")
    for e in globex_events:
        assert [a["worker"] for a in db.attempts(db.delivery(e)["id"])] == ["all-tenants"]
    for e in acme_events:
        assert [a["worker"] for a in db.attempts(db.delivery(e)["id"])] == ["acme-only"]
    assert sorted(h["headers"]["webhook-id"] for h in globex_receiver.hits) == sorted(globex_events)
    assert len(acme_receiver.hits) == 3
