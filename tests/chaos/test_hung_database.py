"""Chaos: PostgreSQL frozen (SIGSTOP on every server process: what a network partition or stuck storage
looks like to a client). The daemons must notice within database_timeout, say so on /readyz, act on
SIGTERM within shutdown_grace, and lose nothing once the server thaws."""
import os
import signal
import time

from chaos_helpers import bulk_events, connect_when_up, freeze, lease_expired_events, pgdir, summary, thaw
from conftest import policy, wait_for
from ops_helpers import metrics_daemon, metrics_port, probe


def test_frozen_database_is_detected_within_the_timeout_sigterm_is_honoured_and_nothing_is_lost(
        db, make_receiver, create_subscription, daemon_factory, write_policies):
    n = 1500
    timeout_s, grace_s, lease_s = 3, 4, 3
    receiver = make_receiver()
    create_subscription(receiver.url("/hang/0.05"))
    policies = write_policies({"default": policy(max_attempts=10, base="100ms", cap="1s",
                                                 connect="1s", request="2s")})
    settings = dict(policies_file=policies, lease_duration=f"{lease_s}s", rescue_interval="200ms",
                    poll_interval="200ms", concurrency=64, database_timeout=f"{timeout_s}s",
                    shutdown_grace=f"{grace_s}s")
    stays = metrics_daemon(daemon_factory, "h1", **settings)
    leaves = metrics_daemon(daemon_factory, "h2", **settings)
    port = metrics_port(stays)
    wait_for(lambda: probe(port, "/readyz")[0] == 200, timeout=5, what="h1 ready")
    assert bulk_events(db, n) == n
    wait_for(lambda: db.value("SELECT count(*) FROM courier.deliveries WHERE status = 'delivered'") >= n // 10,
             timeout=60, interval=0.05, what="a tenth of the backlog delivered")
    db.close()

    pids = []
    frozen_at = time.monotonic()
    try:
        freeze(os.path.join(pgdir(), "data"), pids)
        # Detected within the deadline (plus a round of the loop and of the log).
        wait_for(lambda: all("no answer from the database within" in d.log() for d in (stays, leaves)),
                 timeout=timeout_s + 5, interval=0.1, what="both daemons to give up on the frozen database")
        detected_s = time.monotonic() - frozen_at
        status, reason = wait_for(lambda: (lambda r: r if r[0] == 503 else None)(probe(port, "/readyz")),
                                  timeout=5, what="/readyz 503 while the database is frozen")
        assert "database unreachable" in reason, reason
        assert probe(port, "/healthz")[0] == 200

        # SIGTERM while the database is still frozen: the daemon stops within its grace, whatever the
        # database does (the results it could not write go back by lease expiry).
        term_at = time.monotonic()
        leaves.signal(signal.SIGTERM)
        code = leaves.wait(timeout=grace_s + timeout_s + 5)
        stop_s = time.monotonic() - term_at
        assert code in (0, 1), f"h2 exited with {code}:\n{leaves.log()[-3000:]}"
        assert stop_s <= grace_s + 2, f"SIGTERM took {stop_s:.1f} s with shutdown_grace {grace_s} s:\n{leaves.log()[-3000:]}"

        # Frozen for longer than a lease: h1's held results must still win against the rescue.
        time.sleep(max(0.0, lease_s + 2 - (time.monotonic() - frozen_at)))
    finally:
        thaw(pids)
    frozen_s = time.monotonic() - frozen_at

    fresh = connect_when_up(db.url)
    try:
        wait_for(lambda: fresh.value("SELECT count(*) FROM courier.deliveries WHERE status <> 'delivered'") == 0,
                 timeout=90, interval=0.2, what=f"all {n} deliveries delivered after the thaw")
        wait_for(lambda: probe(port, "/readyz")[0] == 200, timeout=10, what="/readyz 200 again")
        assert fresh.statuses() == {"delivered": n}
        assert fresh.value("SELECT count(*) FROM courier.delivery_queue") == 0
        assert stays.proc.poll() is None, stays.log()[-3000:]
        doubly = fresh.query("SELECT delivery_id, count(*) FROM courier.delivery_attempts WHERE outcome = 'delivered' "
                             "GROUP BY delivery_id HAVING count(*) <> 1")
        assert not doubly, f"deliveries with more than one 'delivered' attempt: {doubly[:5]}"
        hits = {}
        for h in receiver.hits:
            hits[h["headers"]["webhook-id"]] = hits.get(h["headers"]["webhook-id"], 0) + 1
        events = {r[0] for r in fresh.query("SELECT id FROM courier.events")}
        assert events <= set(hits), f"{len(events - set(hits))} event(s) never reached the receiver"
        # Sent twice only where the sender's result was lost with it: a rescued lease of h2, which stopped
        # while the database was frozen. None of h1's: its held results were written before any rescue.
        duplicated = {e for e, c in hits.items() if c > 1}
        rescued = lease_expired_events(fresh)
        assert duplicated <= rescued, f"{len(duplicated - rescued)} duplicate(s) without a rescued lease"
        h1_rescued = fresh.value("SELECT count(*) FROM courier.delivery_attempts WHERE outcome = 'lease_expired' "
                                 "AND error_summary LIKE %s", "lease held by h1 %")
        assert h1_rescued == 0, f"{h1_rescued} of h1's leases were taken back although it held their results"
        summary("hung_database", deliveries=n, detected_s=round(detected_s, 1), sigterm_stop_s=round(stop_s, 1),
                frozen_s=round(frozen_s, 1), duplicates=len(duplicated), rescued=len(rescued))
    finally:
        fresh.close()
