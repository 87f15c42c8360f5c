"""Chaos: kill -9 a daemon at random moments while two of them execute a backlog of integration runs.

A run is at-least-once towards the vendor and exactly-once in the database: every run ends 'completed'
with exactly one 'completed' attempt, its external_ref taken from one of the vendor's answers to it, and
exactly one IntegrationRunCompleted outbox row; the vendor sees every run's Idempotency-Key, and sees it
more than once only for a run with as many attempts on record: a lease taken over (a 'lease_expired'
attempt: it was in flight when its daemon died) or a retry after a timeout, which is what the key is for."""
import itertools
import os
import random
import secrets
import signal
import sys
import time
from collections import Counter, defaultdict

import pytest

from chaos_helpers import restart, summary
from conftest import policy, wait_for
from vendor import Vendor

TENANT = "acme"
PATH = "/v1/things"
API_KEY_HEADER = "X-Vendor-Key"


class CountingVendor(Vendor):
    """tests/e2e/vendor.py's fake vendor, answering every authenticated POST /v1/things with 200
    {"id": "<counter>"} after a few ms, and remembering which ids it gave to which Idempotency-Key.
    Every request it received, answered or not (its caller may be killed meanwhile), is in its log."""

    def __init__(self, delay=(0.002, 0.008)):
        super().__init__()
        self.delay = delay
        self.counter = itertools.count(1)
        self.ids = defaultdict(list)   # Idempotency-Key -> ids answered to it
        # Two daemons open up to 2 x concurrency keep-alive connections at once: a deeper accept queue
        # than socketserver's 5, so that no connect waits for a SYN retransmission.
        self.server.socket.listen(1024)
        default_handle_error = self.server.handle_error

        def handle_error(request, client_address):
            # A killed daemon resets its connections: expected here, not worth a traceback.
            if not isinstance(sys.exc_info()[1], ConnectionError):
                default_handle_error(request, client_address)
        self.server.handle_error = handle_error
        self.script("POST", PATH, (200, {}, {"id": "unused"}))

    def _api_answer(self, request):
        status, headers, body = super()._api_answer(request)
        if status != 200 or request.path != PATH:
            return status, headers, body
        time.sleep(random.uniform(*self.delay))
        with self.lock:
            answer = str(next(self.counter))
            self.ids[request.headers.get("idempotency-key")].append(answer)
        return 200, {}, {"id": answer, "status": "accepted"}

    def keys(self):
        """Counter of Idempotency-Key -> requests received on POST /v1/things."""
        return Counter(r.headers.get("idempotency-key") for r in self.requests("POST", PATH))


def test_kill_9_during_runs_loses_none_completes_each_once_and_repeats_only_taken_over_leases(
        db, ctl, daemon_factory, write_policies, tmp_path):
    seed = int(os.environ.get("PGCOURIER_CHAOS_SEED", str(int(time.time()))))
    rng = random.Random(seed)
    n = 2000
    vendor = CountingVendor().start()
    try:
        key = "sk_chaos_" + secrets.token_urlsafe(24)
        vendor.require_api_key(API_KEY_HEADER, key)
        key_file = tmp_path / "vendor-key"
        key_file.write_text(key)
        key_file.chmod(0o600)
        cred = ctl("credential", "create", "--tenant", TENANT, "--name", "chaos-vendor",
                   "--from-file", str(key_file)).stdout.strip()
        conn = ctl("connection", "create", "--tenant", TENANT, "--provider", "vendor", "--base-url",
                   vendor.base_url, "--auth", "api_key", "--credential", cred,
                   "--api-key-header", API_KEY_HEADER).stdout.strip()
        assert cred.startswith("cred_") and conn.startswith("conn_"), (cred, conn)

        # Short leases (3 s; a live daemon renews them, a token fetch included), so a dead daemon's runs
        # come back within seconds.
        integration = {"health_check_interval": "30s", "unhealthy_after": 3, "run_when_degraded": False,
                       "max_rate_limited_waits": 20, "token_refresh_margin": "60s"}
        policies = write_policies({"default": policy(max_attempts=10, base="50ms", cap="500ms", connect="500ms",
                                                     request="1s", integration=integration)})
        settings = dict(policies_file=policies, lease_duration="3s", rescue_interval="200ms",
                        poll_interval="200ms", maintenance_interval="200ms", log_level="info")
        daemons = [daemon_factory("r1", **settings), daemon_factory("r2", **settings)]

        started = time.monotonic()
        db.query("SELECT courier.enqueue_run(%s, %s, 'chaos.send', 'POST', %s, "
                 "json_build_object('n', g)::text, '{}'::jsonb, NULL, NULL, '/id') FROM generate_series(1, %s) g",
                 TENANT, conn, PATH, n)
        runs = {r[0] for r in db.query("SELECT id FROM courier.runs")}
        assert len(runs) == n

        def completed():
            return db.value("SELECT count(*) FROM courier.runs WHERE status = 'completed'")

        # Kill at random points of the backlog (fractions of the runs completed), so that every kill lands
        # while requests are in flight; restart the killed daemon at once.
        kills_wanted = rng.randint(2, 3)
        thresholds = sorted(rng.uniform(0.05, 0.7) for _ in range(kills_wanted))
        kills = []
        deadline = time.monotonic() + 30
        for fraction in thresholds:
            wait_for(lambda: completed() >= fraction * n or time.monotonic() > deadline, timeout=35,
                     interval=0.01, what=f"{fraction:.0%} of the runs completed")
            victim = rng.choice(daemons)
            # Leased under the victim's worker_id: includes the leases of its previous life not yet rescued.
            in_flight = db.value("SELECT count(*) FROM courier.runs WHERE status = 'running' AND lease_owner = %s",
                                 victim.name)
            victim.signal(signal.SIGKILL)
            assert victim.wait(timeout=10) == -signal.SIGKILL
            kills.append((victim.name, round(fraction, 3), in_flight))
            time.sleep(rng.uniform(0.0, 0.3))
            restart(victim)

        try:
            wait_for(lambda: db.value("SELECT count(*) FROM courier.runs WHERE status <> 'completed'") == 0,
                     timeout=40, interval=0.1, what=f"all {n} runs completed")
        except pytest.fail.Exception:
            now = dict(db.query("SELECT status, count(*) FROM courier.runs GROUP BY status"))
            stuck = db.rows("SELECT id, status, attempts, lease_owner, lease_expires_at, last_error "
                            "FROM courier.runs WHERE status <> 'completed' LIMIT 3")
            logs = "\n".join(f"{d.name} log (tail):\n{d.log()[-1500:]}" for d in daemons)
            pytest.fail(f"not all {n} runs completed after {time.monotonic() - started:.1f}s (kills {kills}): "
                        f"{now}, e.g. {stuck}\n{logs}")
        elapsed = time.monotonic() - started
        time.sleep(0.3)  # the vendor's last log entries (a handler finishing after its caller died)

        statuses = dict(db.query("SELECT status, count(*) FROM courier.runs GROUP BY status"))
        seen = vendor.keys()
        duplicated = {k: c for k, c in seen.items() if c > 1}
        expired = {r[0] for r in db.query("SELECT DISTINCT run_id FROM courier.run_attempts "
                                          "WHERE outcome = 'lease_expired'")}
        # Every request the vendor saw is an attempt on record: a takeover of a dead daemon's lease
        # (lease_expired), or a retry after a timeout or a dropped connection (a loaded machine answers late).
        recorded = {r[0]: (r[1], r[2]) for r in db.query(
            "SELECT run_id, count(*), string_agg(outcome, ',' ORDER BY attempt) FROM courier.run_attempts "
            "GROUP BY run_id")}
        not_explained = sorted(k for k, c in duplicated.items() if c > recorded.get(k, (0, ""))[0])
        retried = {k: recorded[k][1] for k in duplicated if k not in expired and k in recorded}
        summary("runs_kill9", runs=n, seed=seed, kills=len(kills),
                kills_detail=";".join(f"{name}@{frac}({inflight} leased)" for name, frac, inflight in kills),
                duplicates=len(duplicated), extra_requests=sum(c - 1 for c in duplicated.values()),
                lease_expired_runs=len(expired), retried_without_takeover=len(retried),
                retry_outcomes=";".join(sorted(set(retried.values())))[:300], vendor_requests=sum(seen.values()), seconds=round(elapsed, 1))

        assert statuses == {"completed": n}, statuses
        assert len(kills) == kills_wanted and 2 <= len(kills) <= 3

        # The vendor: every run's key (no idempotency key given: the run id), nothing else, all authenticated.
        missing = runs - set(seen)
        assert not missing, f"{len(missing)} run(s) never reached the vendor, e.g. {sorted(missing)[:5]}"
        stray = set(seen) - runs
        assert not stray, f"the vendor saw Idempotency-Keys that are not runs: {sorted(stray, key=str)[:5]}"
        refused = [r for r in vendor.requests() if r.status != 200]
        assert not refused, f"{len(refused)} request(s) not answered 200, e.g. {refused[0].status} {refused[0].path}"
        assert not not_explained, (f"{len(not_explained)} run(s) reached the vendor more often than they have "
                                   f"attempts on record, e.g. "
                                   f"{[(k, duplicated[k], recorded.get(k)) for k in not_explained[:5]]}")

        # Exactly one 'completed' attempt per run, and the run's external_ref is from an answer to it.
        completed_attempts = Counter(r[0] for r in db.query(
            "SELECT run_id FROM courier.run_attempts WHERE outcome = 'completed'"))
        wrong = {r: completed_attempts.get(r, 0) for r in runs if completed_attempts.get(r, 0) != 1}
        assert not wrong, f"{len(wrong)} run(s) without exactly one 'completed' attempt, e.g. {list(wrong.items())[:5]}"
        other = db.query("SELECT outcome, count(*) FROM courier.run_attempts "
                         "WHERE outcome NOT IN ('completed', 'lease_expired') GROUP BY outcome")
        refs = dict(db.query("SELECT id, external_ref FROM courier.runs"))
        no_ref = sorted(r for r, ref in refs.items() if not ref)
        assert not no_ref, f"{len(no_ref)} completed run(s) without an external_ref, e.g. {no_ref[:5]}"
        foreign = sorted(r for r, ref in refs.items() if ref not in vendor.ids.get(r, ()))
        assert not foreign, (f"{len(foreign)} run(s) whose external_ref is not an id the vendor gave to them, "
                             f"e.g. {[(r, refs[r], vendor.ids.get(r)) for r in foreign[:3]]}")
        assert len(set(refs.values())) == n

        # The outbox: exactly one IntegrationRunCompleted per run.
        events = Counter(r[0] for r in db.query(
            "SELECT subject_id FROM courier.outbox WHERE event_type = 'IntegrationRunCompleted'"))
        bad = {r: events.get(r, 0) for r in runs | set(events) if events.get(r, 0) != 1}
        assert not bad, f"{len(bad)} run(s) without exactly one IntegrationRunCompleted, e.g. {list(bad.items())[:5]}"

        # A lease taken over is the only failure a kill may cause (printed when something else shows up).
        if other:
            print(f"[chaos] runs_kill9: other attempt outcomes: {other}", flush=True)
        for d in daemons:
            assert d.proc.poll() is None, f"{d.name} died:\n{d.log()[-2000:]}"
    finally:
        vendor.stop()
