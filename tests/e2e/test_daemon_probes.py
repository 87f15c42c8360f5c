"""End to end: pgcourierd's probes on its metrics address. /healthz answers while the process runs;
/readyz answers 200 only while the daemon's database session is up, and 503 "database unreachable"
during an outage (and the daemon keeps running and recovers)."""
import os
import subprocess
import urllib.error
import urllib.request

from conftest import ROOT, free_port, wait_for


def probe(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_readiness_follows_the_database(db, daemon_factory):
    port = free_port()
    d1 = daemon_factory("d1", metrics_address=f"'127.0.0.1:{port}'", poll_interval="100ms")
    assert probe(port, "/healthz") == (200, "alive\n")
    wait_for(lambda: probe(port, "/readyz") == (200, "ready\n"), timeout=10, what="ready")
    assert "pgcourier_build_info" in probe(port, "/metrics")[1]
    db.close()
    pgdir = os.environ["PGCOURIER_TEST_PGDIR"]
    pg_local = os.path.join(ROOT, "tools", "pg-local")
    subprocess.check_call([pg_local, "stop", pgdir])
    try:
        wait_for(lambda: probe(port, "/readyz") == (503, "database unreachable\n"), timeout=20,
                 what="not ready during the outage")
        assert probe(port, "/healthz")[0] == 200 and d1.proc.poll() is None
    finally:
        subprocess.check_output([pg_local, "start", pgdir, "--fast"], env={**os.environ, "PGLOCAL_DB": "postgres"})
    wait_for(lambda: probe(port, "/readyz") == (200, "ready\n"), timeout=30, what="ready again")
