"""End to end: the gateway's probes. /healthz answers while the process lives; /readyz only while the
database answers and its schema is the one this build migrates to, else 503 with a one-line reason."""
import os
import subprocess

import psycopg2
import pytest

from conftest import ROOT, free_port, wait_for


@pytest.mark.serial   # stops the cluster every test shares
def test_ready_while_the_database_answers_and_not_during_an_outage(gateway, db):
    assert gateway.call("GET", "/healthz")[:3:2] == (200, "alive\n")
    assert gateway.call("GET", "/readyz")[:3:2] == (200, "ready\n")
    db.close()
    pgdir = os.environ["PGCOURIER_TEST_PGDIR"]
    pg_local = os.path.join(ROOT, "tools", "pg-local")
    subprocess.check_call([pg_local, "stop", pgdir])
    try:
        status, headers, body = gateway.call("GET", "/readyz")
        assert status == 503 and body == "database unreachable\n"
        assert gateway.call("GET", "/healthz")[0] == 200
        # The API says so too, as a problem, not a hang.
        status, headers, problem = gateway.call("GET", "/api/v1/events", token="pgc_" + "C" * 43)
        assert status == 503 and headers["content-type"] == "application/problem+json"
    finally:
        subprocess.check_output([pg_local, "start", pgdir, "--fast"], env={**os.environ, "PGLOCAL_DB": "postgres"})
    wait_for(lambda: gateway.call("GET", "/readyz")[0] == 200, timeout=15, what="ready again after the restart")


def test_not_ready_on_a_dead_port(gateway_factory, db_url):
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing?connect_timeout=2"
    gateway = gateway_factory(url=dead)
    status, _, body = gateway.call("GET", "/readyz")
    assert status == 503 and body == "database unreachable\n"
    assert gateway.call("GET", "/healthz")[0] == 200


def test_not_ready_when_the_schema_is_missing_or_not_this_builds(gateway_factory, db_url, pg_admin_url):
    name = "gw_empty_" + str(os.getpid())
    admin = psycopg2.connect(pg_admin_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name}")
        cur.execute(f"CREATE DATABASE {name}")
    try:
        empty = gateway_factory(url=pg_admin_url.rsplit("/", 1)[0] + "/" + name, name="empty")
        status, _, body = empty.call("GET", "/readyz")
        assert status == 503 and body == "schema not migrated\n"

        # A schema newer than this build (a migration it does not know) is not ready either.
        conn = psycopg2.connect(db_url)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("INSERT INTO courier.schema_migrations (version, name) VALUES (999, 'from_the_future')")
        conn.close()
        newer = gateway_factory(name="newer")
        status, _, body = newer.call("GET", "/readyz")
        assert status == 503 and body.startswith("schema version 999, this build needs ")
        assert body.count("\n") == 1
    finally:
        empty.stop()
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def test_sessions_the_server_closed_while_idle_are_replaced_without_failing_a_request(gateway_factory, api_token,
                                                                                       db):
    """Every pooled session terminated by the server (as a restart or an idle timeout does): the next
    requests open new ones instead of answering 503 once per dead session."""
    gateway = gateway_factory("--threads", "2", "--pool-size", "2")
    token = api_token("acme")
    # This test's database only: other tests' gateways may run beside it (tests/run's workers).
    sessions = ("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgcourier-gateway' "
                "AND datname = current_database()")
    for _ in range(20):
        assert gateway.call("GET", "/api/v1/events", token=token)[0] == 200
    wait_for(lambda: db.value(sessions) >= 1, what="the pool's sessions")
    killed = db.value("SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE application_name = 'pgcourier-gateway' AND datname = current_database()) t")
    assert killed >= 1
    wait_for(lambda: db.value(sessions) == 0, what="the sessions to be gone")
    statuses = [gateway.call("GET", "/api/v1/events", token=token)[0] for _ in range(10)]
    assert statuses == [200] * 10, statuses
    assert gateway.call("GET", "/readyz")[0] == 200
