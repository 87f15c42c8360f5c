"""End to end: inbound ingress. For each scheme a correctly signed request becomes an inbound event of
the source's tenant (once per provider delivery id) that fans out like any other; forged signatures, old
timestamps and malformed requests are refused with 401/400 and no detail, recorded with their reason, and
nothing else is stored. Body size and per-source rate limits."""
import base64
import hashlib
import hmac
import json
import time
import uuid

import pytest

from conftest import wait_for

WHSEC = "whsec_" + base64.b64encode(b"k" * 32).decode()
PLAIN = "it's-a-secret-to-everybody"


@pytest.fixture
def make_source(ctl, tmp_path):
    def make(scheme, secret, tenant="acme", event_type=None, tolerance=None):
        path = tmp_path / f"secret-{uuid.uuid4().hex}"
        path.write_text(secret + "\n")
        args = ["ingress-source", "create", "--tenant", tenant, "--scheme", scheme, "--secret-file", str(path)]
        if event_type:
            args += ["--event-type", event_type]
        if tolerance:
            args += ["--tolerance", tolerance]
        return ctl(*args).stdout.strip()
    return make


def hmac_hex(key, data):
    return hmac.new(key.encode() if isinstance(key, str) else key, data, hashlib.sha256).hexdigest()


def standard(body, ts=None, msg_id=None, secret=WHSEC):
    ts = ts or int(time.time())
    msg_id = msg_id or "msg_" + uuid.uuid4().hex
    key = base64.b64decode(secret[len("whsec_"):])
    sig = base64.b64encode(hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()).decode()
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": f"v1,{sig}"}


def github(body, delivery=None, secret=PLAIN):
    return {"X-Hub-Signature-256": "sha256=" + hmac_hex(secret, body), "X-GitHub-Event": "push",
            "X-GitHub-Delivery": delivery or str(uuid.uuid4())}


def stripe(body, ts=None, secret=PLAIN):
    ts = ts or int(time.time())
    return {"Stripe-Signature": f"t={ts},v1={hmac_hex(secret, f'{ts}.'.encode() + body)}"}


def generic(body, ts=None, delivery=None, secret=PLAIN):
    ts = ts or int(time.time())
    h = {"X-Timestamp": str(ts), "X-Signature": "sha256=" + hmac_hex(secret, f"{ts}.".encode() + body)}
    if delivery:
        h["X-Delivery-Id"] = delivery
    return h


def body_for(scheme, n=1):
    if scheme == "stripe":
        return json.dumps({"id": f"evt_stripe_{uuid.uuid4().hex}", "type": "invoice.paid", "n": n}).encode()
    return json.dumps({"type": "order.created", "n": n}).encode()


SCHEMES = {"standard-webhooks": (WHSEC, standard), "github": (PLAIN, github), "stripe": (PLAIN, stripe),
           "hmac-sha256": (PLAIN, generic)}
EXPECTED_TYPE = {"standard-webhooks": "order.created", "github": "github.push", "stripe": "stripe.invoice.paid",
                 "hmac-sha256": "ingress.received"}


def requests_of(db, source):
    return db.query("SELECT accepted, reason, event_id IS NOT NULL FROM courier.ingress_requests "
                    "WHERE source_id = %s ORDER BY received_at, id", source)


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_a_signed_request_becomes_one_inbound_event_and_a_forged_one_nothing(scheme, gateway, make_source, db):
    secret, sign = SCHEMES[scheme]
    source = make_source(scheme, secret)
    body = body_for(scheme)
    headers = sign(body)
    status, _, accepted = gateway.call("POST", f"/ingress/{source}", raw=body, headers=headers)
    assert status == 202, accepted
    event = db.rows("SELECT tenant_id, event_type, payload, direction FROM courier.events WHERE id = %s",
                    accepted["id"])[0]
    assert (event["tenant_id"], event["event_type"], event["direction"]) == ("acme", EXPECTED_TYPE[scheme], "inbound")
    assert event["payload"] == json.loads(body)
    # The provider retries the same delivery: the same event, nothing new.
    status, _, again = gateway.call("POST", f"/ingress/{source}", raw=body, headers=headers)
    assert status == 202 and again == {"id": accepted["id"], "duplicate": True}
    assert db.value("SELECT count(*) FROM courier.events") == 1

    # Forged: signed with another secret, or the body changed after signing.
    other = WHSEC.replace("a", "b") if scheme == "standard-webhooks" else "not-the-secret"
    forged = sign(body_for(scheme, 2), secret=other)
    status, headers_out, problem = gateway.call("POST", f"/ingress/{source}", raw=body_for(scheme, 2), headers=forged)
    assert status == 401 and problem == {"type": "about:blank", "title": "Unauthorized", "status": 401}
    tampered_body = body_for(scheme, 3)
    signed_other = sign(body_for(scheme, 4))
    assert gateway.call("POST", f"/ingress/{source}", raw=tampered_body, headers=signed_other)[0] == 401
    # No signature at all: malformed.
    status, _, problem = gateway.call("POST", f"/ingress/{source}", raw=body)
    assert status == 400 and "detail" not in problem
    assert db.value("SELECT count(*) FROM courier.events") == 1
    recorded = requests_of(db, source)
    assert [r[0] for r in recorded] == [True, True, False, False, False]
    assert all(r[1] for r in recorded[2:]), recorded  # every refusal has its reason


@pytest.mark.parametrize("scheme", ["standard-webhooks", "stripe", "hmac-sha256"])
def test_an_old_timestamp_is_refused_even_with_a_valid_signature(scheme, gateway, make_source, db):
    secret, sign = SCHEMES[scheme]
    source = make_source(scheme, secret, tolerance="60s")
    body = body_for(scheme)
    status, _, problem = gateway.call("POST", f"/ingress/{source}", raw=body, headers=sign(body, ts=int(time.time()) - 600))
    assert status == 401 and "detail" not in problem
    future = gateway.call("POST", f"/ingress/{source}", raw=body, headers=sign(body, ts=int(time.time()) + 600))
    assert future[0] == 401
    assert db.value("SELECT count(*) FROM courier.events") == 0
    assert [r[:2] for r in requests_of(db, source)][0][0] is False
    assert "window" in requests_of(db, source)[0][1]


def test_an_inbound_event_fans_out_to_the_tenants_subscriptions(gateway, make_source, create_subscription,
                                                                 receiver, daemon_factory, db):
    sub, secret = create_subscription(receiver.url("/ok"), events="github.*")
    receiver.secrets.append(secret)
    create_subscription(receiver.url("/other-tenant"), events="*", tenant="globex")
    source = make_source("github", PLAIN)
    daemon_factory("d1")
    body = b'{"ref": "refs/heads/main"}'
    status, _, accepted = gateway.call("POST", f"/ingress/{source}", raw=body, headers=github(body))
    assert status == 202
    wait_for(lambda: receiver.hits_for("/ok"), what="the inbound event delivered to the tenant's subscription")
    hit = receiver.hits_for("/ok")[0]
    assert hit["verified"] and hit["headers"]["webhook-id"] == accepted["id"]
    assert json.loads(hit["body"])["type"] == "github.push"
    assert receiver.hits_for("/other-tenant") == []


def test_unknown_sources_bodies_too_large_and_floods_are_refused(gateway_factory, make_source, db):
    gateway = gateway_factory("--max-body-bytes", "2048", "--ingress-rate-limit", "1", "--ingress-rate-burst", "3")
    source = make_source("hmac-sha256", PLAIN, event_type="partner.update")
    body = b'{"n": 1}'
    assert gateway.call("POST", "/ingress/src_nope", raw=body, headers=generic(body))[0] == 404
    assert gateway.call("POST", "/ingress/..%2f..%2fetc", raw=body, headers=generic(body))[0] == 404
    big = json.dumps({"blob": "x" * 5000}).encode()
    assert gateway.call("POST", f"/ingress/{source}", raw=big, headers=generic(big))[0] == 413
    statuses = [gateway.call("POST", f"/ingress/{source}", raw=body, headers=generic(body, delivery=f"d{i}"))[0]
                for i in range(5)]
    assert statuses[:2] == [202, 202] and 429 in statuses
    assert db.value("SELECT count(*) FROM courier.events WHERE event_type = 'partner.update'") == statuses.count(202)
    # Not JSON, though signed: refused and recorded, nothing stored.
    time.sleep(2.2)
    text = b"not json"
    assert gateway.call("POST", f"/ingress/{source}", raw=text, headers=generic(text, delivery="dx"))[0] == 400
    assert db.value("SELECT reason FROM courier.ingress_requests WHERE NOT accepted ORDER BY received_at DESC LIMIT 1") \
        == "the body is not JSON"


def test_source_secrets_are_sealed_and_never_logged(gateway, make_source, db, ctl):
    source = make_source("github", PLAIN)
    stored = db.value("SELECT sealed_secret FROM courier.ingress_sources WHERE id = %s", source)
    assert stored.startswith("v1:") and PLAIN not in stored
    body = b"{}"
    gateway.call("POST", f"/ingress/{source}", raw=body, headers=github(body, secret="wrong"))
    listed = json.loads(ctl("ingress-source", "list", "--json").stdout)["sources"]
    assert [(s["id"], s["scheme"], s["accepted"], s["refused"]) for s in listed] == [(source, "github", 0, 1)]
    assert PLAIN not in gateway.log() and hmac_hex(PLAIN, body) not in gateway.log()
