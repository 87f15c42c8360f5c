"""Fair shares (issue 15): one tenant's endpoints that accept connections and never answer hold only
their share of the daemon's request slots, so another tenant's events keep arriving meanwhile.

Behaviour, not wall-clock: the healthy tenant's events must all arrive while every request to the
silent endpoints is still hanging (none of them has even timed out yet)."""
import time

from conftest import policy, wait_for

SILENT_ENDPOINTS = 20
BACKLOG_PER_ENDPOINT = 30  # 600 deliveries in all
HEALTHY_EVENTS = 20


def test_silent_endpoints_of_one_tenant_do_not_hold_up_another_tenants_deliveries(
        db, make_receiver, create_subscription, daemon_factory, write_policies):
    # The silent endpoints time out only after 20 s, and answer (too late) after 60.
    policies = write_policies({"default": policy(max_attempts=2, request="1s"),
                               "patient": policy(max_attempts=2, connect="1s", request="20s")})
    silent = make_receiver()
    healthy = make_receiver()
    for i in range(SILENT_ENDPOINTS):
        create_subscription(silent.url("/hang/60"), events=f"noisy{i}.*", tenant="acme",
                            policy="patient")
    create_subscription(healthy.url("/ok"), events="order.*", tenant="globex")
    # acme's backlog is there before the daemon starts: it is first in line by age.
    db.query("SELECT courier.publish('acme', 'noisy' || mod(g, %s) || '.created', jsonb_build_object('n', g)) "
             "FROM generate_series(0, %s) g", SILENT_ENDPOINTS, SILENT_ENDPOINTS * BACKLOG_PER_ENDPOINT - 1)
    # A daemon with the default concurrency (256) and windows (256 / 32 = 8 per endpoint).
    d = daemon_factory("d1", policies_file=policies, poll_interval="200ms", shutdown_grace="1s")
    started = time.monotonic()

    def acme_in_flight():
        return db.value("SELECT count(*) FROM courier.delivery_queue WHERE tenant_id = 'acme' "
                        "AND lease_owner IS NOT NULL")
    wait_for(lambda: acme_in_flight() >= SILENT_ENDPOINTS * 8, timeout=10,
             what="every silent endpoint to hold its window of requests")

    published = {}
    for i in range(HEALTHY_EVENTS):
        published[db.publish("globex", "order.created", f'{{"n": {i}}}')] = time.time()
        time.sleep(0.02)
    wait_for(lambda: len(healthy.hits) >= HEALTHY_EVENTS, timeout=15, what="globex's events to arrive")
    arrived_after = time.monotonic() - started

    # Every silent request is still hanging: not one acme attempt has been recorded yet...
    assert db.value("SELECT count(*) FROM courier.delivery_attempts a JOIN courier.deliveries d "
                    "ON d.id = a.delivery_id WHERE d.tenant_id = 'acme'") == 0, "an acme request timed out"
    assert arrived_after < 20, f"globex's events took {arrived_after:.1f}s: acme's requests had timed out by then"
    # ...and acme never held more than its windows, nor any endpoint more than its own.
    per_endpoint = db.rows("SELECT subscription_id, count(*) AS n FROM courier.delivery_queue "
                           "WHERE tenant_id = 'acme' AND lease_owner IS NOT NULL GROUP BY subscription_id")
    assert len(per_endpoint) == SILENT_ENDPOINTS
    assert max(r["n"] for r in per_endpoint) <= 8, per_endpoint
    assert acme_in_flight() <= 0.75 * 256
    # All of globex's events arrived once, each signed and delivered.
    ids = [h["headers"]["webhook-id"] for h in healthy.hits]
    assert sorted(ids) == sorted(published), "a globex event arrived twice or not at all"
    wait_for(lambda: db.value("SELECT count(*) FROM courier.deliveries WHERE tenant_id = 'globex' "
                              "AND status = 'delivered'") == HEALTHY_EVENTS, timeout=5, what="globex's outcomes")
    latencies = sorted(h["arrived_at"] - published[h["headers"]["webhook-id"]] for h in healthy.hits)
    print(f"globex publish-to-arrival while acme's 20 endpoints hang: p50 {latencies[len(latencies) // 2] * 1000:.0f} ms, "
          f"max {latencies[-1] * 1000:.0f} ms")
    d.stop()


def test_an_event_committed_late_below_the_claims_floor_is_still_delivered(
        db, receiver, create_subscription, daemon_factory):
    """A claim looks for a subscription's rows from the due time of the oldest row its last claim took
    (less a second: lanes/deliveries/scan_floors.hpp). An event whose transaction began before that and
    committed after has an earlier due time (its transaction's): one claim a second looks everywhere."""
    import psycopg2
    create_subscription(receiver.url("/ok"), events="order.*", tenant="acme")
    daemon_factory("d1", poll_interval="30s")
    late = psycopg2.connect(db.url)
    try:
        with late.cursor() as cur:
            cur.execute("SELECT courier.publish('acme', 'order.late', '{\"late\": true}')")
            late_id = cur.fetchone()[0]
        time.sleep(1.5)  # the others are due more than the floor's slack after it
        others = []
        for i in range(30):
            others.append(db.publish("acme", "order.created", f'{{"n": {i}}}'))
            time.sleep(0.02)
        wait_for(lambda: len(receiver.hits) >= len(others), timeout=15, what="the other events to arrive")
        late.commit()  # its NOTIFY wakes the daemon; its row is due 1.5 s before the floor
    finally:
        late.close()
    wait_for(lambda: len(receiver.hits) >= len(others) + 1, timeout=10, what="the late event to arrive")
    ids = [h["headers"]["webhook-id"] for h in receiver.hits]
    assert sorted(ids) == sorted(others + [late_id]), "an event arrived twice or not at all"
    assert ids[-1] == late_id
