"""End to end: pgcourier-gateway's management API against a real PostgreSQL, a real pgcourierd and real
receivers: tokens and their scope (a foreign tenant's ids are 404), round trips of every implemented
route, idempotency keys, cursor pagination, limits (body size, rate, slowloris) and what is never logged."""
import os
import signal
import socket
import time

import pytest

from conftest import policy, wait_for


def new_subscription(gateway, token, url, event_types=("order.*",), **extra):
    status, headers, body = gateway.call("POST", "/api/v1/subscriptions", {"url": url, "event_types": list(event_types),
                                                                          **extra}, token=token)
    assert status == 201, body
    return body


def test_no_token_a_wrong_one_and_a_revoked_one_are_401_problems(gateway, api_token, ctl):
    status, headers, body = gateway.call("GET", "/api/v1/subscriptions")
    assert status == 401
    assert headers["content-type"] == "application/problem+json"
    assert body["status"] == 401 and body["title"] == "Unauthorized" and body["type"] == "about:blank"
    assert headers["www-authenticate"] == "Bearer"
    assert gateway.call("GET", "/api/v1/subscriptions", token="pgc_" + "A" * 43)[0] == 401
    assert gateway.call("GET", "/api/v1/subscriptions", headers={"Authorization": "Basic eDp5"})[0] == 401
    token = api_token("acme")
    assert gateway.call("GET", "/api/v1/subscriptions", token=token)[0] == 200
    token_id = next(t["id"] for t in __import__("json").loads(ctl("api-token", "list", "--json").stdout)["tokens"])
    ctl("api-token", "revoke", token_id)
    assert gateway.call("GET", "/api/v1/subscriptions", token=token)[0] == 401


def test_tokens_are_stored_as_hashes_and_listed_without_them(db, api_token, ctl):
    token = api_token("acme", name="billing")
    import json
    listed = json.loads(ctl("api-token", "list", "--json").stdout)["tokens"]
    assert [(t["tenant_id"], t["name"]) for t in listed] == [("acme", "billing")]
    assert token not in ctl("api-token", "list").stdout
    stored = db.query("SELECT encode(token_sha256, 'hex') FROM courier.api_tokens")
    import hashlib
    assert stored == [(hashlib.sha256(token.encode()).hexdigest(),)]
    assert db.value("SELECT count(*) FROM courier.api_tokens WHERE position(%s in row(api_tokens.*)::text) > 0",
                    token) == 0


def test_subscription_round_trip_with_a_tenant_token(gateway, api_token, receiver):
    token = api_token("acme")
    created = new_subscription(gateway, token, receiver.url("/ok"), description="orders")
    assert created["secret"].startswith("whsec_")
    assert created["tenant_id"] == "acme" and created["event_types"] == ["order.*"]
    assert created["secret_last4"] == created["secret"][-4:]
    sub = created["id"]

    status, _, got = gateway.call("GET", f"/api/v1/subscriptions/{sub}", token=token)
    assert status == 200 and "secret" not in got and got["secret_last4"] == created["secret"][-4:]
    assert got["description"] == "orders" and got["state"] == "active"

    status, _, patched = gateway.call("PATCH", f"/api/v1/subscriptions/{sub}", {"event_types": ["invoice.paid"]},
                                      token=token)
    assert status == 200 and patched["event_types"] == ["invoice.paid"]
    status, _, refused = gateway.call("PATCH", f"/api/v1/subscriptions/{sub}", {"colour": "blue"}, token=token)
    assert status == 422 and "colour" in refused["detail"]

    assert gateway.call("POST", f"/api/v1/subscriptions/{sub}/pause", {"reason": "maintenance"},
                        token=token)[2]["state"] == "paused"
    assert gateway.call("POST", f"/api/v1/subscriptions/{sub}/resume", token=token)[2]["state"] == "active"

    status, _, rotated = gateway.call("POST", f"/api/v1/subscriptions/{sub}/rotate-secret", {"grace": "1 hour"},
                                      token=token)
    assert status == 200 and rotated["secret"].startswith("whsec_") and rotated["secret"] != created["secret"]
    assert gateway.call("GET", f"/api/v1/subscriptions/{sub}", token=token)[2]["secret_last4"] == rotated["secret"][-4:]
    status, _, revoked = gateway.call("POST", f"/api/v1/subscriptions/{sub}/revoke-secret", {}, token=token)
    assert status == 200 and revoked["subscription_id"] == sub

    assert gateway.call("POST", f"/api/v1/subscriptions/{sub}/disable", token=token)[2]["state"] == "disabled"


def test_a_foreign_tenant_token_gets_404_for_every_id_of_another_tenant(gateway, api_token, receiver, db):
    acme, other = api_token("acme"), api_token("globex")
    sub = new_subscription(gateway, acme, receiver.url("/ok"))["id"]
    event = gateway.call("POST", "/api/v1/events", {"event_type": "order.created", "payload": {"n": 1}},
                         token=acme)[2]["id"]
    delivery = db.value("SELECT id FROM courier.deliveries WHERE event_id = %s", event)
    before = db.value("SELECT row(s.*)::text FROM courier.subscriptions s WHERE id = %s", sub)

    for method, path, body in [
            ("GET", f"/api/v1/subscriptions/{sub}", None),
            ("PATCH", f"/api/v1/subscriptions/{sub}", {"url": "https://evil.example/x"}),
            ("POST", f"/api/v1/subscriptions/{sub}/pause", {}),
            ("POST", f"/api/v1/subscriptions/{sub}/resume", {}),
            ("POST", f"/api/v1/subscriptions/{sub}/disable", {}),
            ("POST", f"/api/v1/subscriptions/{sub}/rotate-secret", {}),
            ("POST", f"/api/v1/subscriptions/{sub}/revoke-secret", {}),
            ("GET", f"/api/v1/deliveries/{delivery}", None),
            ("POST", "/api/v1/dead-letters/replay", {"subscription_id": sub}),
            ("GET", "/api/v1/subscriptions/sub_does_not_exist", None)]:
        status, headers, answer = gateway.call(method, path, body, token=other)
        assert status == 404, (method, path, answer)
        assert answer == {"type": "about:blank", "title": "Not Found", "status": 404}, (method, path)

    # Writing for another tenant by naming it in the body is refused the same way, and nothing is written.
    assert gateway.call("POST", "/api/v1/subscriptions", {"tenant_id": "acme", "url": receiver.url("/x"),
                                                          "event_types": ["*"]}, token=other)[0] == 404
    assert gateway.call("POST", "/api/v1/events", {"tenant_id": "acme", "event_type": "order.created"},
                        token=other)[0] == 404
    assert db.value("SELECT count(*) FROM courier.subscriptions") == 1
    assert db.value("SELECT count(*) FROM courier.events") == 1
    assert db.value("SELECT row(s.*)::text FROM courier.subscriptions s WHERE id = %s", sub) == before

    # Lists show only the token's tenant.
    for path in ["/api/v1/subscriptions", "/api/v1/events", "/api/v1/deliveries", "/api/v1/dead-letters"]:
        status, _, page = gateway.call("GET", path, token=other)
        assert status == 200 and page == {"items": [], "next": None}, path
        assert len(gateway.call("GET", path, token=acme)[2]["items"]) == (0 if "dead" in path else 1), path


def test_an_operator_token_sees_every_tenant_and_names_the_tenant_it_writes_for(gateway, api_token, receiver):
    operator = api_token(None)
    status, _, refused = gateway.call("POST", "/api/v1/subscriptions", {"url": receiver.url("/ok"),
                                                                        "event_types": ["*"]}, token=operator)
    assert status == 422 and "tenant_id" in refused["detail"]
    a = new_subscription(gateway, operator, receiver.url("/a"), tenant_id="acme")
    b = new_subscription(gateway, operator, receiver.url("/b"), tenant_id="globex")
    listed = gateway.call("GET", "/api/v1/subscriptions", token=operator)[2]["items"]
    assert sorted((s["id"], s["tenant_id"]) for s in listed) == sorted([(a["id"], "acme"), (b["id"], "globex")])
    assert [s["id"] for s in gateway.call("GET", "/api/v1/subscriptions", token=api_token("acme"))[2]["items"]] == \
        [a["id"]]


def test_published_event_is_delivered_by_the_daemon_and_its_timeline_is_served(
        gateway, api_token, receiver, daemon_factory):
    token = api_token("acme")
    sub = new_subscription(gateway, token, receiver.url("/ok"))
    receiver.secrets.append(sub["secret"])
    daemon_factory("d1")
    status, _, published = gateway.call("POST", "/api/v1/events", {"event_type": "order.created",
                                                                   "payload": {"order_id": 7},
                                                                   "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"},
                                        token=token, headers={"Idempotency-Key": "order-7"})
    assert status == 202 and published["id"].startswith("evt_") and published["duplicate"] is False
    again = gateway.call("POST", "/api/v1/events", {"event_type": "order.created", "payload": {"order_id": 7}},
                         token=token, headers={"Idempotency-Key": "order-7"})
    assert again[0] == 202 and again[2] == {"id": published["id"], "duplicate": True}

    def delivered():
        items = gateway.call("GET", f"/api/v1/deliveries?status=delivered&subscription_id={sub['id']}",
                             token=token)[2]["items"]
        return items[0] if items else None
    wait_for(delivered, what="the delivery to be delivered")
    hits = receiver.hits_for("/ok")
    assert len(hits) == 1 and hits[0]["verified"] and hits[0]["headers"]["webhook-id"] == published["id"]

    delivery = delivered()
    status, _, detail = gateway.call("GET", f"/api/v1/deliveries/{delivery['id']}", token=token)
    assert status == 200 and detail["status"] == "delivered" and detail["event_id"] == published["id"]
    assert [(a["attempt"], a["status_code"], a["outcome"], a["retryable"]) for a in detail["attempts"]] == \
        [(1, 200, "delivered", False)]
    assert detail["attempts"][0]["response_excerpt"] == '{"ok":true}', "the receiver's answer, as stored"
    feed = gateway.call("GET", "/api/v1/events", token=token)[2]
    assert [(e["id"], e["payload"], e["idempotency_key"]) for e in feed["items"]] == \
        [(published["id"], {"order_id": 7}, "order-7")]
    assert gateway.call("GET", "/api/v1/deliveries?status=failed", token=token)[2]["items"] == []


def test_dead_letters_are_listed_and_replayed_with_a_dry_run_first(
        gateway, api_token, make_receiver, daemon_factory, write_policies, db):
    token = api_token("acme")
    receiver = make_receiver()
    sub = new_subscription(gateway, token, receiver.url("/status/500"))
    policies = write_policies({"default": policy(max_attempts=2, base="50ms", cap="100ms")})
    d1 = daemon_factory("d1", policies_file=policies, poll_interval="100ms")
    event = gateway.call("POST", "/api/v1/events", {"event_type": "order.created"}, token=token)[2]["id"]
    wait_for(lambda: gateway.call("GET", "/api/v1/dead-letters", token=token)[2]["items"], what="a dead letter")
    letter = gateway.call("GET", "/api/v1/dead-letters", token=token)[2]["items"][0]
    assert letter["event_id"] == event and letter["subscription_id"] == sub["id"] and letter["attempts"] == 2

    status, _, dry = gateway.call("POST", "/api/v1/dead-letters/replay", {"subscription_id": sub["id"],
                                                                          "dry_run": True}, token=token)
    assert status == 200 and dry == {"dry_run": True, "deliveries": 1}
    assert db.value("SELECT status FROM courier.deliveries WHERE id = %s", letter["delivery_id"]) == "dead_lettered"
    # The receiver recovers; the replay sends it again.
    gateway.call("PATCH", f"/api/v1/subscriptions/{sub['id']}", {"url": receiver.url("/ok")}, token=token)
    status, _, done = gateway.call("POST", "/api/v1/dead-letters/replay", {"subscription_id": sub["id"]}, token=token)
    assert status == 200 and done == {"dry_run": False, "deliveries": 1}
    wait_for(lambda: db.value("SELECT status FROM courier.deliveries WHERE id = %s", letter["delivery_id"])
             == "delivered", what="the replayed delivery to be delivered")
    assert receiver.hits_for("/ok")
    d1.stop()


def test_pages_carry_a_cursor_to_the_next_page(gateway, api_token, receiver):
    token = api_token("acme")
    ids = [new_subscription(gateway, token, receiver.url(f"/{i}"))["id"] for i in range(5)]
    first = gateway.call("GET", "/api/v1/subscriptions?limit=2", token=token)[2]
    assert [s["id"] for s in first["items"]] == ids[:2] and first["next"] == ids[1]
    second = gateway.call("GET", f"/api/v1/subscriptions?limit=2&after={first['next']}", token=token)[2]
    assert [s["id"] for s in second["items"]] == ids[2:4]
    last = gateway.call("GET", f"/api/v1/subscriptions?limit=2&after={second['next']}", token=token)[2]
    assert [s["id"] for s in last["items"]] == ids[4:] and last["next"] is None
    assert gateway.call("GET", "/api/v1/subscriptions?limit=0", token=token)[0] == 400
    assert gateway.call("GET", "/api/v1/subscriptions?limit=abc", token=token)[0] == 400
    assert gateway.call("GET", "/api/v1/subscriptions?after=x'%20OR%201=1", token=token)[0] == 400


def test_a_repeated_idempotency_key_creates_one_subscription_and_shows_its_secret_once(gateway, api_token, receiver,
                                                                                        db):
    token = api_token("acme")
    body = {"url": receiver.url("/ok"), "event_types": ["*"]}
    first = gateway.call("POST", "/api/v1/subscriptions", body, token=token, headers={"Idempotency-Key": "create-1"})
    second = gateway.call("POST", "/api/v1/subscriptions", body, token=token, headers={"Idempotency-Key": "create-1"})
    assert first[0] == 201 and "secret" in first[2]
    assert second[0] == 200 and second[1]["idempotent-replayed"] == "true"
    assert second[2]["id"] == first[2]["id"] and "secret" not in second[2]
    # The same key for another tenant is another key.
    third = gateway.call("POST", "/api/v1/subscriptions", body, token=api_token("globex"),
                         headers={"Idempotency-Key": "create-1"})
    assert third[0] == 201 and third[2]["id"] != first[2]["id"]
    assert db.value("SELECT count(*) FROM courier.subscriptions") == 2


def test_bad_bodies_are_refused_before_anything_is_written(gateway_factory, api_token, db, receiver):
    gateway = gateway_factory("--max-body-bytes", "4096")
    token = api_token("acme")
    status, headers, body = gateway.call("POST", "/api/v1/events", raw=b"{not json", token=token)
    assert status == 400 and headers["content-type"] == "application/problem+json"
    big = {"event_type": "order.created", "payload": {"blob": "x" * 10000}}
    assert gateway.call("POST", "/api/v1/events", big, token=token)[0] == 413
    assert gateway.call("POST", "/api/v1/events", {"event_type": "order.created", "extra": 1}, token=token)[0] == 422
    assert gateway.call("POST", "/api/v1/subscriptions", {"url": "http://user:pw@example.com/x",
                                                          "event_types": ["*"]}, token=token)[0] == 422
    assert db.value("SELECT count(*) FROM courier.events") == 0
    assert db.value("SELECT count(*) FROM courier.subscriptions") == 0
    assert gateway.call("DELETE", "/api/v1/events", token=token)[0] == 405
    assert gateway.call("GET", "/api/v1/nothing-here", token=token)[0] == 404


def test_a_token_over_its_rate_limit_gets_429_with_retry_after(gateway_factory, api_token):
    gateway = gateway_factory("--rate-limit", "1", "--rate-burst", "3")
    token, other = api_token("acme"), api_token("acme")
    statuses = [gateway.call("GET", "/api/v1/events", token=token)[0] for _ in range(5)]
    assert statuses[:3] == [200, 200, 200] and 429 in statuses[3:]
    status, headers, body = gateway.call("GET", "/api/v1/events", token=token)
    assert status == 429 and int(headers["retry-after"]) >= 1 and body["status"] == 429
    # Another token has its own bucket.
    assert gateway.call("GET", "/api/v1/events", token=other)[0] == 200
    time.sleep(1.2)
    assert gateway.call("GET", "/api/v1/events", token=token)[0] == 200


def test_a_slowloris_client_is_cut_off_at_the_request_timeout(gateway_factory):
    gateway = gateway_factory("--request-timeout-ms", "2000", "--threads", "2")
    started = time.monotonic()
    sock = socket.create_connection(("127.0.0.1", gateway.port))
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    closed_after = None
    header = b"X-Slow: " + b"a" * 60
    for i in range(len(header)):
        try:
            sock.sendall(header[i:i + 1])
        except OSError:
            closed_after = time.monotonic() - started
            break
        sock.settimeout(1.0)
        try:
            data = sock.recv(200)
            closed_after = time.monotonic() - started
            assert data == b"" or data.startswith(b"HTTP/1.") and b" 200 " not in data.split(b"\r\n")[0]
            break
        except socket.timeout:
            continue
    sock.close()
    assert closed_after is not None, "the slow client was never cut off"
    assert closed_after < 6, closed_after
    # Both workers are free again for ordinary clients.
    assert gateway.call("GET", "/healthz")[0] == 200


def test_tokens_and_secrets_never_reach_the_log(gateway, api_token, receiver):
    token = api_token("acme")
    created = new_subscription(gateway, token, receiver.url("/ok?sig=querysecret"))
    gateway.call("GET", "/api/v1/subscriptions", token="pgc_" + "B" * 43)
    gateway.call("GET", f"/api/v1/events?after=evt_1&limit=5", token=token)
    # The access log line follows the response (it times the write too), from the server's thread.
    wait_for(lambda: "POST /api/v1/subscriptions 201" in gateway.log() and "GET /api/v1/events 200" in gateway.log(),
             timeout=5, what="the access log's lines")
    log = gateway.log()
    for secret in [token, created["secret"], "B" * 43, "querysecret"]:
        assert secret not in log


def test_credentials_are_created_rotated_and_retired_sealed_and_only_within_the_tenant(gateway, api_token, db, ctl,
                                                                                      receiver):
    acme, other = api_token("acme"), api_token("globex")
    status, _, created = gateway.call("POST", "/api/v1/credentials", {"name": "crm", "secret": "key-one"}, token=acme)
    assert status == 201 and created["tenant_id"] == "acme" and created["active_version"] == 1
    assert created["fingerprint"].startswith("fp_") and "secret" not in created
    cred = created["id"]
    stored = db.value("SELECT sealed_secret FROM courier.credential_versions WHERE credential_id = %s", cred)
    assert stored.startswith("v1:") and "key-one" not in stored
    assert "key-one" not in gateway.log()

    for method, path, body in [("GET", f"/api/v1/credentials/{cred}", None),
                               ("POST", f"/api/v1/credentials/{cred}/rotate", {"secret": "key-evil"}),
                               ("POST", f"/api/v1/credentials/{cred}/retire", {})]:
        assert gateway.call(method, path, body, token=other)[0] == 404, path
    assert db.value("SELECT count(*) FROM courier.credential_versions WHERE credential_id = %s", cred) == 1

    status, _, same = gateway.call("POST", f"/api/v1/credentials/{cred}/rotate", {"secret": "key-one"}, token=acme)
    assert status == 409
    status, _, rotating = gateway.call("POST", f"/api/v1/credentials/{cred}/rotate", {"secret": "key-two"}, token=acme)
    assert status == 202 and rotating["rotating_version"] == 2 and rotating["status"] == "rotating"
    assert gateway.call("POST", f"/api/v1/credentials/{cred}/rotate", {"secret": "key-three"}, token=acme)[0] == 409
    assert gateway.call("POST", "/api/v1/credentials", {"name": "x"}, token=acme)[0] == 422

    # A connection uses it: retiring is refused until the connection is retired.
    conn = ctl("connection", "create", "--tenant", "acme", "--provider", "crm", "--base-url", receiver.url("/api"),
               "--auth", "bearer", "--credential", cred).stdout.strip()
    status, _, refused = gateway.call("POST", f"/api/v1/credentials/{cred}/retire", {}, token=acme)
    assert status == 409 and conn in refused["detail"]
    ctl("connection", "retire", conn)
    status, _, retired = gateway.call("POST", f"/api/v1/credentials/{cred}/retire", {}, token=acme)
    assert status == 200 and retired["status"] == "revoked"
    assert {v["status"] for v in retired["versions"]} == {"revoked"}
    assert gateway.call("POST", f"/api/v1/credentials/{cred}/rotate", {"secret": "key-four"}, token=acme)[0] == 409


def test_connections_are_created_retired_and_activated_only_within_the_tenant(gateway, api_token, db, ctl,
                                                                             receiver):
    acme, other, operator = api_token("acme"), api_token("globex"), api_token(None)
    cred = gateway.call("POST", "/api/v1/credentials", {"name": "crm", "secret": "key-one"}, token=acme)[2]["id"]
    foreign_cred = gateway.call("POST", "/api/v1/credentials", {"name": "crm", "secret": "key-g"}, token=other)[2]["id"]
    body = {"provider": "crm", "base_url": receiver.url("/api"), "auth_mode": "bearer", "credential_id": cred,
            "health_check_path": "/health", "max_in_flight": 4}
    status, headers, created = gateway.call("POST", "/api/v1/connections", body, token=acme,
                                            headers={"Idempotency-Key": "conn-1"})
    assert status == 201 and created["tenant_id"] == "acme" and created["status"] == "active", created
    conn = created["id"]
    row = db.query("SELECT tenant_id, auth_mode, credential_id, health_check_path, max_in_flight, policy "
                   "FROM courier.connections WHERE id = %s", conn)
    assert row == [("acme", "bearer", cred, "/health", 4, "default")]
    # The same key again: the same connection, no second row.
    status, headers, again = gateway.call("POST", "/api/v1/connections", body, token=acme,
                                          headers={"Idempotency-Key": "conn-1"})
    assert status == 200 and headers.get("idempotent-replayed") == "true" and again["id"] == conn
    assert db.value("SELECT count(*) FROM courier.connections") == 1

    # Another tenant's credential is an unknown one (its id does not leak), and so is its connection.
    status, _, problem = gateway.call("POST", "/api/v1/connections", {**body, "credential_id": foreign_cred},
                                      token=acme)
    assert status == 404 and foreign_cred not in problem.get("detail", ""), problem
    for path in (f"/api/v1/connections/{conn}/retire", f"/api/v1/connections/{conn}/activate"):
        assert gateway.call("POST", path, {}, token=other)[0] == 404, path
    assert gateway.call("GET", f"/api/v1/connections/{conn}", token=other)[0] == 404
    # A tenant token naming another tenant is refused the same way.
    assert gateway.call("POST", "/api/v1/connections", {**body, "tenant_id": "globex"}, token=acme)[0] == 404
    # Bad bodies: named field, nothing written.
    for bad, field in [({**body, "bogus": 1}, "bogus"), ({**body, "max_in_flight": "four"}, "max_in_flight"),
                       ({**body, "base_url": "ftp://x.example"}, ""), ({"provider": "crm"}, "")]:
        status, _, problem = gateway.call("POST", "/api/v1/connections", bad, token=acme)
        assert status == 422 and field in problem["detail"], (bad, problem)
    assert db.value("SELECT count(*) FROM courier.connections") == 1, "a refused body wrote nothing"
    # An operator token names the tenant; without one it is refused.
    status, _, made = gateway.call("POST", "/api/v1/connections",
                                   {"tenant_id": "globex", "provider": "crm", "base_url": receiver.url("/g")},
                                   token=operator)
    assert status == 201 and made["tenant_id"] == "globex"
    assert gateway.call("POST", "/api/v1/connections", {"provider": "crm", "base_url": receiver.url("/g")},
                        token=operator)[0] == 422

    # Degraded -> activate -> active; retire; a retired one stays retired; the CLI sees the same rows.
    db.query("UPDATE courier.connections SET status = 'degraded', status_reason = 'refused' WHERE id = %s "
             "RETURNING id", conn)
    status, _, activated = gateway.call("POST", f"/api/v1/connections/{conn}/activate", {}, token=acme)
    assert status == 200 and activated["status"] == "active" and activated["previous_status"] == "degraded"
    assert activated["status_reason"] is None
    status, _, retired = gateway.call("POST", f"/api/v1/connections/{conn}/retire", {}, token=acme)
    assert status == 200 and retired["status"] == "retired" and retired["previous_status"] == "active"
    status, _, still = gateway.call("POST", f"/api/v1/connections/{conn}/activate", {}, token=acme)
    assert status == 200 and still["status"] == "retired"
    assert ctl("connection", "show", conn).stdout.count("retired") >= 1


def test_refused_calls_keep_their_database_session(gateway_factory, api_token, db):
    """A 404 or 422 rolls its transaction back and keeps the session: probing ids costs no reconnect."""
    gateway = gateway_factory("--threads", "1", "--pool-size", "1")
    token = api_token("acme")
    sessions = ("SELECT array_agg(pid ORDER BY pid) FROM pg_stat_activity WHERE application_name = 'pgcourier-gateway' "
                "AND datname = current_database()")   # this test's gateway: others may run beside it
    assert gateway.call("GET", "/api/v1/events", token=token)[0] == 200
    before = db.value(sessions)
    assert before is not None and len(before) == 1
    for i in range(10):
        assert gateway.call("GET", f"/api/v1/subscriptions/sub_{i}", token=token)[0] == 404
        assert gateway.call("POST", "/api/v1/events", {"bogus": i}, token=token)[0] == 422
    assert db.value(sessions) == before


def test_redeliver_from_a_cursor_stays_within_the_tenant(gateway, api_token, receiver, db):
    acme, other = api_token("acme"), api_token("globex")
    sub = new_subscription(gateway, acme, receiver.url("/ok"))["id"]
    events = [gateway.call("POST", "/api/v1/events", {"event_type": "order.created", "payload": {"n": i}},
                           token=acme)[2]["id"] for i in range(3)]
    foreign = gateway.call("POST", "/api/v1/events", {"event_type": "order.created"}, token=other)[2]["id"]
    db.query("UPDATE courier.deliveries SET status = 'delivered', completed_at = now() RETURNING id")
    status, _, first = gateway.call("POST", f"/api/v1/subscriptions/{sub}/redeliver", {"max_events": 2}, token=acme)
    assert status == 200 and first == {"events_processed": 2, "next_cursor": events[1]}
    status, _, rest = gateway.call("POST", f"/api/v1/subscriptions/{sub}/redeliver",
                                   {"from_event": first["next_cursor"]}, token=acme)
    assert status == 200 and rest == {"events_processed": 1, "next_cursor": events[2]}
    assert db.value("SELECT count(*) FROM courier.deliveries WHERE status = 'pending'") == 3
    # Another tenant's event as the cursor, or another tenant's subscription: 404, nothing re-queued.
    db.query("UPDATE courier.deliveries SET status = 'delivered' RETURNING id")
    assert gateway.call("POST", f"/api/v1/subscriptions/{sub}/redeliver", {"from_event": foreign},
                        token=acme)[0] == 404
    assert gateway.call("POST", f"/api/v1/subscriptions/{sub}/redeliver", {}, token=other)[0] == 404
    assert db.value("SELECT count(*) FROM courier.deliveries WHERE status = 'pending'") == 0


def test_urls_are_checked_at_the_door_against_the_policies_and_reloaded_on_sighup(
        gateway_factory, api_token, db, receiver, write_policies):
    """The endpoint rules the daemon applies before every request (the policies file) refuse a URL when it is
    created through the API, with 422 naming the field, before anything is written; SIGHUP re-reads the file
    and an invalid one keeps the previous rules."""
    local = policy()  # plain http to 127.0.0.0/8 only
    egress = policy(endpoint={"require_https": False, "allow_cidrs": ["127.0.0.0/8"],
                              "allow_only_hosts": ["127.0.0.1"]})
    path = write_policies({"default": local, "egress": egress})
    gateway = gateway_factory("--policies", path)
    token = api_token("acme")

    def create(url, **extra):
        return gateway.call("POST", "/api/v1/subscriptions", {"url": url, "event_types": ["*"], **extra}, token=token)

    assert create(receiver.url("/ok"))[0] == 201
    for url, extra, field, words in [
            ("http://10.1.2.3/hook", {}, "url", "private"),                      # not in allow_cidrs
            ("http://169.254.169.254/latest", {}, "url", "link-local"),          # the metadata service
            ("http://hooks.example.com/x", {"policy": "egress"}, "url", "allow_only"),  # allow_only_hosts narrows
            (receiver.url("/ok"), {"policy": "nope"}, "policy", "'nope'"),
            ("gopher://example.com/", {}, "url", "http")]:
        status, _, problem = create(url, **extra)
        assert (status, problem.get("field")) == (422, field) and words in problem["detail"], (url, problem)
    assert db.value("SELECT count(*) FROM courier.subscriptions") == 1, "a refused URL wrote nothing"
    assert create(receiver.url("/egress"), policy="egress")[0] == 201

    sub = db.value("SELECT id FROM courier.subscriptions WHERE policy = 'default'")
    status, _, problem = gateway.call("PATCH", f"/api/v1/subscriptions/{sub}", {"url": "http://10.9.9.9/"},
                                      token=token)
    assert (status, problem["field"]) == (422, "url"), problem
    assert db.value("SELECT url FROM courier.subscriptions WHERE id = %s", sub) == receiver.url("/ok")
    status, _, problem = gateway.call("POST", "/api/v1/connections",
                                      {"provider": "crm", "base_url": "http://10.1.2.3/api"}, token=token)
    assert (status, problem["field"]) == (422, "base_url"), problem
    assert db.value("SELECT count(*) FROM courier.connections") == 0

    # SIGHUP: 10.0.0.0/8 is allowed from now on; then an invalid file is refused and the rules stay.
    write_policies({"default": policy(endpoint={"require_https": False, "allow_cidrs": ["127.0.0.0/8", "10.0.0.0/8"]}),
                    "egress": egress}, name=os.path.basename(path))
    gateway.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: create("http://10.1.2.3/hook")[0] == 201, timeout=10, what="the reloaded rules")
    with open(path, "w") as f:
        f.write("policies: [not, a, map]\n")
    gateway.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "the previous policies stay" in gateway.log(), timeout=10, what="the refusal in the log")
    assert create("http://10.1.2.4/hook")[0] == 201
    assert create("http://169.254.169.254/")[0] == 422
