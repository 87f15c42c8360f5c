"""End to end: docs/openapi.json is the gateway's API. It is served at /api/v1/openapi.json as it is kept in
docs/, every route it documents exists and answers with the documented status and top-level shape (the
required keys of its schema, and of a page's items), and every answer carries no key the schema lacks."""
import json
import os
import re

import pytest

from conftest import ROOT

DOC = json.load(open(os.path.join(ROOT, "docs", "openapi.json")))


def resolve(schema):
    while "$ref" in schema:
        schema = DOC["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def check_shape(schema, value, where):
    schema = resolve(schema)
    if schema.get("type") != "object":
        return
    assert isinstance(value, dict), (where, value)
    missing = [k for k in schema.get("required", []) if k not in value]
    assert not missing, (where, "missing", missing)
    extra = [k for k in value if k not in schema.get("properties", {})]
    assert not extra, (where, "undocumented", extra)
    items = schema.get("properties", {}).get("items")
    if isinstance(items, dict) and items.get("type") == "array":
        assert isinstance(value["items"], list) and value["items"], (where, "an empty page proves nothing")
        for item in value["items"]:
            check_shape(items["items"], item, where + "[]")


@pytest.fixture
def world(gateway, api_token, ctl, db, receiver):
    """One object of every kind for tenant acme, and the ids to put into the documented paths."""
    token = api_token("acme")
    sub = gateway.call("POST", "/api/v1/subscriptions", {"url": receiver.url("/ok"), "event_types": ["*"]},
                       token=token)[2]["id"]
    event = gateway.call("POST", "/api/v1/events", {"event_type": "order.created"}, token=token)[2]["id"]
    gateway.call("POST", "/api/v1/events", {"event_type": "order.updated"}, token=token)
    delivery = db.value("SELECT id FROM courier.deliveries WHERE event_id = %s", event)
    db.query("UPDATE courier.deliveries SET status = 'dead_lettered', completed_at = now() WHERE id = %s "
             "RETURNING id", delivery)
    conn = ctl("connection", "create", "--tenant", "acme", "--provider", "crm",
               "--base-url", receiver.url("/api")).stdout.strip()
    run = gateway.call("POST", "/api/v1/runs", {"connection_id": conn, "operation": "contact.create",
                                                "path": "/contacts", "body": "{}"}, token=token)[2]["id"]
    db.query("INSERT INTO courier.failures (tenant_id, source, source_id, category, error_code, message, "
             "next_action) VALUES ('acme', 'run', %s, 'auth', 'unauthorized', 'token refused', 'escalate') "
             "RETURNING id", run)
    escalation = db.value("SELECT id FROM courier.escalations")
    credential = gateway.call("POST", "/api/v1/credentials", {"name": "crm", "secret": "s3cret-1"}, token=token)[2]["id"]
    return {"token": token, "ids": {"/api/v1/subscriptions/": sub, "/api/v1/deliveries/": delivery,
                                    "/api/v1/runs/": run, "/api/v1/connections/": conn,
                                    "/api/v1/escalations/": escalation, "/api/v1/credentials/": credential}}


BODIES = {
    ("post", "/api/v1/subscriptions"): lambda w: {"url": "https://example.com/hook", "event_types": ["a.b"]},
    ("post", "/api/v1/events"): lambda w: {"event_type": "order.created", "payload": {"n": 1}},
    ("post", "/api/v1/runs"): lambda w: {"connection_id": w["ids"]["/api/v1/connections/"], "operation": "x"},
    ("patch", "/api/v1/subscriptions/{id}"): lambda w: {"description": "changed"},
    ("post", "/api/v1/dead-letters/replay"): lambda w: {"dry_run": True},
    ("post", "/api/v1/credentials"): lambda w: {"name": "other", "secret": "s3cret-2"},
    ("post", "/api/v1/connections"): lambda w: {"provider": "crm", "base_url": "https://example.com/api"},
    ("post", "/api/v1/credentials/{id}/rotate"): lambda w: {"secret": "s3cret-3"},
}

# Routes whose effect would take away what later routes need: run last, in this order.
LAST = ["/api/v1/subscriptions/{id}/redeliver", "/api/v1/subscriptions/{id}/revoke-secret", "/api/v1/subscriptions/{id}/disable",
        "/api/v1/connections/{id}/retire", "/api/v1/credentials/{id}/retire"]


def operations():
    ops = [(path, method, op) for path, item in DOC["paths"].items() for method, op in item.items()
           if method in ("get", "post", "patch", "put", "delete")]
    return sorted(ops, key=lambda o: (o[0] in LAST, LAST.index(o[0]) if o[0] in LAST else 0))


def test_the_served_document_is_the_one_in_docs(gateway):
    status, headers, served = gateway.call("GET", "/api/v1/openapi.json")
    assert status == 200 and served == DOC
    assert DOC["openapi"].startswith("3.")


def test_every_documented_route_answers_with_its_documented_shape(gateway, world):
    checked = 0
    for path, method, op in operations():
        concrete = path
        for prefix, value in world["ids"].items():
            concrete = concrete.replace(prefix + "{id}", prefix + value)
        assert "{" not in concrete, f"no id for {path}"
        body = BODIES.get((method, path), lambda w: {} if method != "get" else None)(world)
        token = None if op.get("security") == [] else world["token"]
        status, headers, answer = gateway.call(method.upper(), concrete, body, token=token)
        documented = {int(code): spec for code, spec in op["responses"].items()}
        success = next(code for code in documented if code < 300)  # the first documented: the usual answer
        assert status == success, (method, path, status, answer)
        content = documented[success].get("content", {})
        if "application/json" in content:
            assert headers["content-type"] == "application/json", (method, path)
            check_shape(content["application/json"]["schema"], answer, f"{method} {path}")
        else:
            assert headers["content-type"].startswith("text/plain"), (method, path)
        if token:
            # Without the token the same route is a 401 problem, as every API route documents.
            assert 401 in documented, (method, path)
            status, headers, problem = gateway.call(method.upper(), concrete, body)
            assert status == 401 and headers["content-type"] == "application/problem+json"
            check_shape({"$ref": "#/components/schemas/Problem"}, problem, "401")
        checked += 1
    assert checked >= 25, checked


def test_every_api_route_of_the_gateway_is_documented():
    """The routes the gateway serves (read from its source) are the documented ones, and the other way round."""
    source = open(os.path.join(ROOT, "gateway", "api", "api.cpp")).read()
    collections = set(re.findall(r'collection == "([a-z-]+)"', source))
    documented = {p.split("/")[3] for p in DOC["paths"] if p.startswith("/api/v1/") and p != "/api/v1/openapi.json"}
    assert collections == documented
