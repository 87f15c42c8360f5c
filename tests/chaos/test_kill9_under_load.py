"""Chaos: kill -9 daemons at random moments while two of them drain a large backlog.

Delivery is at-least-once: every event reaches the receiver, every delivery ends 'delivered' with exactly
one 'delivered' attempt, and an event may reach the receiver twice only if its lease was taken over
(a 'lease_expired' attempt row: it was in flight when its daemon died)."""
import os
import random
import signal
import time

from chaos_helpers import bulk_events, fast_receiver, lease_expired_events, restart, summary
from conftest import policy, wait_for


def test_kill_9_under_load_loses_nothing_and_duplicates_only_taken_over_leases(
        db, create_subscription, daemon_factory, write_policies, tmp_path):
    seed = int(os.environ.get("PGCOURIER_CHAOS_SEED", str(int(time.time()))))
    rng = random.Random(seed)
    hook = fast_receiver(str(tmp_path))
    n = 20000 if hook.kind == "nginx" else 5000
    if hook.kind != "nginx":
        print(f"[chaos] nginx not installed: falling back to a Python receiver with {n} deliveries", flush=True)
    try:
        # Short leases (3 s; a live daemon renews them), so a dead daemon's work comes back soon.
        policies = write_policies({"default": policy(max_attempts=10, base="50ms", cap="500ms",
                                                     connect="500ms", request="1s")})
        create_subscription(hook.url())
        settings = dict(policies_file=policies, lease_duration="3s", rescue_interval="200ms",
                        poll_interval="200ms", log_level="info")
        daemons = [daemon_factory("k1", **settings), daemon_factory("k2", **settings)]

        started = time.monotonic()
        assert bulk_events(db, n) == n

        # Kill at random points of the drain (fractions of the work delivered), so every kill lands
        # while requests are in flight; restart the killed daemon at once.
        kills_wanted = rng.randint(3, 5)
        thresholds = sorted(rng.uniform(0.03, 0.8) for _ in range(kills_wanted))
        kills = []
        deadline = time.monotonic() + 120
        for fraction in thresholds:
            wait_for(lambda: db.value("SELECT count(*) FROM courier.deliveries WHERE status = 'delivered'")
                     >= fraction * n or time.monotonic() > deadline, timeout=125, interval=0.02,
                     what=f"{fraction:.0%} delivered")
            victim = rng.choice(daemons)
            in_flight = db.value("SELECT count(*) FROM courier.delivery_queue WHERE lease_owner = %s", victim.name)
            victim.signal(signal.SIGKILL)
            assert victim.wait(timeout=10) == -signal.SIGKILL
            kills.append((victim.name, round(fraction, 3), in_flight))
            time.sleep(rng.uniform(0.0, 0.3))
            restart(victim)

        wait_for(lambda: db.value("SELECT count(*) FROM courier.deliveries WHERE status <> 'delivered'") == 0,
                 timeout=120, interval=0.2, what=f"all {n} deliveries delivered")
        elapsed = time.monotonic() - started
        time.sleep(0.5)  # the receiver's last log lines

        statuses = db.statuses()
        assert statuses == {"delivered": n}, statuses
        hits = hook.hits()
        events = {r[0] for r in db.query("SELECT id FROM courier.events")}
        missing = events - set(hits)
        assert not missing, f"{len(missing)} event(s) never reached the receiver, e.g. {sorted(missing)[:5]}"
        stray = set(hits) - events
        assert not stray, f"the receiver saw webhook-ids that are not events: {sorted(stray)[:5]}"

        duplicated = {e: c for e, c in hits.items() if c > 1}
        expired = lease_expired_events(db)
        not_explained = sorted(set(duplicated) - expired)
        # No double completion: one 'delivered' attempt per delivery, whatever happened.
        doubly = db.query("SELECT delivery_id, count(*) FROM courier.delivery_attempts WHERE outcome = 'delivered' "
                          "GROUP BY delivery_id HAVING count(*) <> 1")
        no_delivered_attempt = db.value(
            "SELECT count(*) FROM courier.deliveries d WHERE NOT EXISTS (SELECT 1 FROM courier.delivery_attempts a "
            "WHERE a.delivery_id = d.id AND a.outcome = 'delivered')")
        summary("kill9", receiver=hook.kind, deliveries=n, seed=seed, kills=len(kills),
                kills_detail=";".join(f"{name}@{frac}({inflight} leased)" for name, frac, inflight in kills),
                duplicates=len(duplicated), extra_requests=sum(c - 1 for c in duplicated.values()),
                lease_expired_deliveries=len(expired), seconds=round(elapsed, 1))

        assert len(kills) == kills_wanted and 3 <= len(kills) <= 5
        assert not not_explained, (f"{len(not_explained)} event(s) reached the receiver twice without a "
                                   f"lease_expired attempt, e.g. {not_explained[:5]}")
        assert len(duplicated) <= len(expired)
        assert not doubly, f"deliveries with more or less than one 'delivered' attempt: {doubly[:5]}"
        assert no_delivered_attempt == 0
        for d in daemons:
            assert d.proc.poll() is None, f"{d.name} died:\n{d.log()[-2000:]}"
    finally:
        hook.stop()
