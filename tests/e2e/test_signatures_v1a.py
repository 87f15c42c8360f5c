"""End to end: a subscription signed with Standard Webhooks v1a (ed25519): the daemon signs every delivery with
the sealed private key, the receiver verifies with the public key alone; a rotation keeps both signing during
its grace period."""
import base64
import json

import pytest

from conftest import wait_for

ed25519 = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ed25519")


def verify(public_key, headers, body):
    """True when one v1a signature of the header is public_key's over id.timestamp.body."""
    key = ed25519.Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key.removeprefix("whpk_")))
    message = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body.encode()
    for signature in headers["webhook-signature"].split():
        scheme, _, value = signature.partition(",")
        if scheme != "v1a":
            continue
        try:
            key.verify(base64.b64decode(value), message)
            return True
        except Exception:  # noqa: BLE001 - any failure is "does not verify"
            continue
    return False


def test_a_v1a_subscription_is_signed_with_ed25519_and_verifies_with_its_public_key(db, ctl, receiver, daemon_factory):
    out = ctl("subscription", "create", "--tenant", "acme", "--url", receiver.url("/v1a"), "--events", "*",
              "--signature", "v1a", "--json").stdout
    created = json.loads(out)
    public_key = created["public_key"]
    assert public_key.startswith("whpk_") and "secret" not in created
    # The private key is stored only sealed; what is shown is the public key.
    sealed = db.value("SELECT sealed_secret FROM courier.subscription_secrets WHERE subscription_id = %s",
                      created["id"])
    assert sealed.startswith("v1:") and "whsk_" not in sealed
    shown = json.loads(ctl("subscription", "show", created["id"], "--json").stdout)
    assert [(s["scheme"], s["public_key"]) for s in shown["secrets"]] == [("v1a", public_key)]
    assert public_key in ctl("subscription", "show", created["id"]).stdout

    daemon_factory("d1")
    event_id = db.publish("acme", "order.created", '{"amount": 12}')
    wait_for(lambda: receiver.hits_for("/v1a"), what="the v1a delivery")
    hit = receiver.hits_for("/v1a")[0]
    assert hit["headers"]["webhook-id"] == event_id
    assert hit["headers"]["webhook-signature"].startswith("v1a,")
    assert verify(public_key, hit["headers"], hit["body"])
    assert not verify(public_key, hit["headers"], hit["body"].replace("12", "13"))

    # Rotation back to an HMAC secret with grace: both sign meanwhile, newest first.
    rotated = json.loads(ctl("subscription", "rotate-secret", created["id"], "--signature", "v1", "--grace", "1h",
                             "--json").stdout)
    receiver.secrets.append(rotated["secret"])
    second = db.publish("acme", "order.created", '{"amount": 13}')
    wait_for(lambda: any(h["headers"]["webhook-id"] == second for h in receiver.hits_for("/v1a")),
             what="the delivery after the rotation")
    hit = next(h for h in receiver.hits_for("/v1a") if h["headers"]["webhook-id"] == second)
    schemes = [s.split(",")[0] for s in hit["headers"]["webhook-signature"].split()]
    assert schemes == ["v1", "v1a"]
    assert hit["verified"] and verify(public_key, hit["headers"], hit["body"])
