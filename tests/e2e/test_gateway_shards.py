"""pgcourier-gateway over two real PostgreSQL clusters with a shard map (README: Tenant shards): each
request goes to the shard that stores its API token (a tenant's token in its tenant's shard, an operator's
per shard), ingress to the shard that holds the source, and /readyz names every shard's state, 503 while
one is stopped and 200 again when it is back."""
import json
import subprocess

from conftest import PGCOURIER_GATEWAY, Database, wait_for
from test_gateway_ingress import PLAIN, generic
from test_shards import run_ctl, write_map


def token(master_key, shard_map, *args):
    out = run_ctl(master_key, shard_map, *args, "api-token", "create", "--name", "test", "--json").stdout
    return json.loads(out)["token"]


def source(master_key, shard_map, tenant, secret_file, *where):
    """A new hmac-sha256 ingress source of `tenant`, in its shard unless `where` says (--shard NAME)."""
    return run_ctl(master_key, shard_map, *where, "ingress-source", "create", "--tenant", tenant, "--scheme",
                   "hmac-sha256", "--secret-file", secret_file).stdout.strip()


def ids(gateway, path, bearer):
    status, _, page = gateway.call("GET", path, token=bearer)
    assert status == 200, page
    return sorted(item["id"] for item in page["items"])


def test_the_gateway_follows_the_shard_map_and_names_a_stopped_shard(
        db, db_url, second_pg, master_key, gateway_factory, receiver, tmp_path):
    two = Database(second_pg.url)
    try:
        shard_map = write_map(tmp_path / "shards.yaml", db_url, second_pg.url, {"acme": "one", "globex": "two"})
        acme = token(master_key, shard_map, "--tenant", "acme")
        globex = token(master_key, shard_map, "--tenant", "globex")
        operator_one = token(master_key, shard_map, "--shard", "one", "--operator")
        operator_two = token(master_key, shard_map, "--shard", "two", "--operator")
        gateway = gateway_factory("--shard-map", shard_map, "--pool-size", "2")
        assert "shard map" in gateway.log() and "shards one, two" in gateway.log()

        # Each tenant's writes land in its shard's cluster, and only there.
        status, _, acme_sub = gateway.call("POST", "/api/v1/subscriptions",
                                           {"url": receiver.url("/a"), "event_types": ["*"]}, token=acme)
        assert status == 201, acme_sub
        status, _, globex_sub = gateway.call("POST", "/api/v1/subscriptions",
                                             {"url": receiver.url("/g"), "event_types": ["*"]}, token=globex)
        assert status == 201, globex_sub
        assert db.query("SELECT id, tenant_id FROM courier.subscriptions") == [(acme_sub["id"], "acme")]
        assert two.query("SELECT id, tenant_id FROM courier.subscriptions") == [(globex_sub["id"], "globex")]
        status, _, event = gateway.call("POST", "/api/v1/events", {"event_type": "order.created"}, token=globex)
        assert status == 202 and two.value("SELECT tenant_id FROM courier.events WHERE id = %s", event["id"]) == "globex"
        assert db.value("SELECT count(*) FROM courier.events") == 0

        # A tenant sees its own subscriptions; the other tenant's ids are 404, as unknown ones.
        assert ids(gateway, "/api/v1/subscriptions", acme) == [acme_sub["id"]]
        assert ids(gateway, "/api/v1/subscriptions", globex) == [globex_sub["id"]]
        assert gateway.call("GET", f"/api/v1/subscriptions/{globex_sub['id']}", token=acme)[0] == 404
        assert gateway.call("GET", f"/api/v1/subscriptions/{acme_sub['id']}", token=globex)[0] == 404
        assert gateway.call("GET", f"/api/v1/subscriptions/{acme_sub['id']}", token=acme)[0] == 200

        # An operator token is one shard's: it sees that shard, and writes only for that shard's tenants.
        assert ids(gateway, "/api/v1/subscriptions", operator_one) == [acme_sub["id"]]
        assert ids(gateway, "/api/v1/subscriptions", operator_two) == [globex_sub["id"]]
        status, _, refused = gateway.call("POST", "/api/v1/subscriptions", {"tenant_id": "globex", "event_types": ["*"],
                                                                            "url": receiver.url("/x")},
                                          token=operator_one)
        assert status == 422 and "puts globex in two" in refused["detail"], refused
        assert db.value("SELECT count(*) FROM courier.subscriptions") == 1
        status, _, page = gateway.call("GET", "/console/", headers={"Cookie": f"pgc_session={operator_two}"})
        assert status == 200 and "Overview of shard two" in page

        # A tenant's token stored in a shard the map does not put the tenant in is refused, and logged.
        stray = token(master_key, shard_map, "--shard", "one", "--tenant", "globex")
        assert gateway.call("GET", "/api/v1/subscriptions", token=stray)[0] == 401
        assert "is stored in shard one, but the shard map puts the tenant in two" in gateway.log()
        assert gateway.call("GET", "/api/v1/subscriptions", token="pgc_" + "U" * 43)[0] == 401

        # Ingress: each source is found in its shard and its event is stored there.
        secret_file = tmp_path / "ingress-secret"
        secret_file.write_text(PLAIN + "\n")
        acme_src = source(master_key, shard_map, "acme", str(secret_file))
        globex_src = source(master_key, shard_map, "globex", str(secret_file))
        for src, cluster, tenant in ((acme_src, db, "acme"), (globex_src, two, "globex")):
            body = json.dumps({"source": src}).encode()
            status, _, accepted = gateway.call("POST", f"/ingress/{src}", raw=body, headers=generic(body))
            assert status == 202, accepted
            assert cluster.value("SELECT tenant_id FROM courier.events WHERE id = %s AND direction = 'inbound'",
                                 accepted["id"]) == tenant
        assert gateway.call("POST", "/ingress/src_nowhere", raw=b"{}", headers=generic(b"{}"))[0] == 404
        # A source left in a shard the map does not put its tenant in: 503 (providers retry), logged, nothing stored.
        stray_src = source(master_key, shard_map, "globex", str(secret_file), "--shard", "one")
        body = json.dumps({"stray": 1}).encode()
        status, _, problem = gateway.call("POST", f"/ingress/{stray_src}", raw=body, headers=generic(body))
        assert status == 503 and problem["detail"] == "this source is not in its tenant's shard", problem
        assert f"ingress {stray_src}: the source is in shard one, but the shard map puts its tenant globex in two" \
            in gateway.log()
        assert db.value("SELECT count(*) FROM courier.events WHERE tenant_id = 'globex'") == 0

        assert gateway.call("GET", "/readyz")[:3:2] == (200, "one: ready\ntwo: ready\n")
        two.close()
        second_pg.stop()
        try:
            status, _, body = gateway.call("GET", "/readyz")
            assert (status, body) == (503, "one: ready\ntwo: database unreachable\n")
            # Shard one's tenant and its ingress carry on; shard two's, and a token no answering shard knows,
            # are 503 naming the shard (it may be stored there), not a false 401.
            assert ids(gateway, "/api/v1/subscriptions", acme) == [acme_sub["id"]]
            body = json.dumps({"again": 1}).encode()
            assert gateway.call("POST", f"/ingress/{acme_src}", raw=body, headers=generic(body))[0] == 202
            for bearer in (globex, "pgc_" + "U" * 43):
                status, headers, problem = gateway.call("GET", "/api/v1/subscriptions", token=bearer)
                assert status == 503 and headers["content-type"] == "application/problem+json", problem
                assert problem["detail"] == "the database of shard two is unreachable"
            status, _, problem = gateway.call("POST", f"/ingress/{globex_src}", raw=body, headers=generic(body))
            assert status == 503 and problem["detail"] == "the database of shard two is unreachable"
        finally:
            second_pg.start()
        wait_for(lambda: gateway.call("GET", "/readyz")[0] == 200, timeout=15, what="ready again after the restart")
        assert gateway.call("GET", "/readyz")[2] == "one: ready\ntwo: ready\n"
        # The pool replaces its lost connections (one failed request each at most): globex is served again.
        wait_for(lambda: gateway.call("GET", "/api/v1/subscriptions", token=globex)[0] == 200, timeout=15,
                 what="shard two's tenant served again")
        assert ids(gateway, "/api/v1/subscriptions", globex) == [globex_sub["id"]]
    finally:
        two.close()


def test_the_shard_map_comes_from_the_environment_too_and_a_wrong_one_stops_the_start(
        db_url, second_cluster, gateway_factory, tmp_path, master_key):
    shard_map = write_map(tmp_path / "shards.yaml", db_url, second_cluster, {"acme": "one"})
    gateway = gateway_factory(env={"PGCOURIER_SHARD_MAP": shard_map})
    assert gateway.call("GET", "/readyz")[:3:2] == (200, "one: ready\ntwo: ready\n")
    # Without a map nothing changes: one database, one line.
    plain = gateway_factory(name="plain")
    assert plain.call("GET", "/readyz")[:3:2] == (200, "ready\n")

    bad = tmp_path / "bad.yaml"
    bad.write_text(f"shards:\n  one: '{db_url}'\ndefault: nowhere\n")
    out = subprocess.run([PGCOURIER_GATEWAY, "--shard-map", str(bad)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "default: no shard named 'nowhere'" in out.stderr, out.stderr
    assert "--shard-map FILE" in subprocess.run([PGCOURIER_GATEWAY, "--help"], capture_output=True, text=True).stdout
