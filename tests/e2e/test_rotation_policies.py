"""End to end: credential rotation policies (sql/schema/70_providers.sql, daemon/lanes/runs) through
pgcourierctl and a running pgcourierd. A due rotation with a command promotes a version verified with
the connection's health check; a failing command, or a secret the vendor refuses, keeps the prior
version; without a command the operator is told (CredentialRotationDue and an escalation). Every step
is an outbox event shown by `credential show`, and the command's output appears nowhere."""
import json

from test_integration_runs import Courier, courier, new_secret  # noqa: F401  (the fixture)

ROTATION_EVENTS = ("CredentialRotationDue", "CredentialRotationStarted", "CredentialRotationVersionStored",
                   "CredentialRotationFailed", "CredentialRotated")


def command(courier, name, script):
    path = courier.tmp / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o700)
    return str(path)


def printing(courier, secret):
    """A rotation command printing `secret` (a secret handed to pgcourier, checked by the leak check)."""
    courier.secrets.add(secret)
    return command(courier, "new-secret", f"printf '%s\\n' '{secret}'\n")


def make_due(courier, cred):
    """Time passes: the policy's next rotation is due now."""
    courier.db.query("UPDATE courier.credential_rotation_policies SET next_due_at = now() WHERE credential_id = %s",
                     cred)


def steps(courier, cred):
    return [t for t in courier.outbox_types(cred) if t in ROTATION_EVENTS]


def api_key_setup(courier, make_vendor, old_key):
    vendor = make_vendor()
    vendor.require_api_key("X-Key", old_key)
    vendor.script("GET", "/health", (200, {}, {"ok": True}))
    vendor.script("POST", "/v1/messages", (200, {}, {"sid": "SM1"}))
    return vendor


def test_a_due_rotation_with_a_command_promotes_a_verified_version(courier, make_vendor):
    old_key, new_key = new_secret("sk_old_"), new_secret("sk_new_")
    vendor = api_key_setup(courier, make_vendor, old_key)
    cred = courier.credential(old_key, rotate_every="30d", rotation_command=printing(courier, new_key))
    conn = courier.connection(vendor.base_url, auth="api_key", credential=cred, api_key_header="X-Key",
                              health_check="GET /health", expect_status=200)
    courier.start()
    courier.until(lambda: courier.connection_row(conn)["health"] == "healthy", "the first passing probe", ids=[conn])
    assert steps(courier, cred) == [], "not due for 30 days"

    vendor.require_api_key("X-Key", old_key, new_key)   # the vendor knows both during the rotation
    make_due(courier, cred)
    courier.until(lambda: courier.versions(cred) == [(1, "inactive"), (2, "active")], "the new version promoted",
                  ids=[cred, conn])
    assert steps(courier, cred) == ["CredentialRotationStarted", "CredentialRotationVersionStored",
                                    "CredentialRotated"]
    assert any(r.headers.get("x-key") == new_key for r in vendor.requests("GET", "/health")), "verified first"
    policy = courier.db.rows("SELECT * FROM courier.credential_rotation_policies WHERE credential_id = %s", cred)[0]
    assert (policy["state"], policy["last_result"]) == ("idle", "rotated to version 2"), policy
    assert courier.db.value("SELECT next_due_at > now() + interval '29 days' FROM courier.credential_rotation_policies "
                            "WHERE credential_id = %s", cred)

    run = courier.enqueue(conn, operation="send", path="/v1/messages", body="{}")
    courier.wait_run(run, "completed")
    assert request_key(vendor) == new_key

    shown = json.loads(courier.ctl("credential", "show", cred, "--json").stdout)
    assert shown["rotation_policy"]["rotate_every"] == "30 days"
    assert [e["event_type"] for e in shown["rotation_events"]] == steps(courier, cred)
    text = courier.ctl("credential", "show", cred).stdout
    assert "rotation policy: every 30 days" in text and "CredentialRotationVersionStored" in text, text
    courier.assert_no_secret_leaks(vendor)


def request_key(vendor):
    return vendor.requests("POST", "/v1/messages")[-1].headers.get("x-key")


def test_a_failing_rotation_keeps_the_prior_version(courier, make_vendor):
    old_key, refused_key = new_secret("sk_old_"), new_secret("sk_refused_")
    vendor = api_key_setup(courier, make_vendor, old_key)
    failing = command(courier, "failing", "echo 'partial output' ; exit 3\n")
    cred = courier.credential(old_key, rotate_every="30d", rotation_command=failing)
    conn = courier.connection(vendor.base_url, auth="api_key", credential=cred, api_key_header="X-Key",
                              health_check="GET /health", expect_status=200)
    courier.start()
    courier.until(lambda: courier.connection_row(conn)["health"] == "healthy", "the first passing probe", ids=[conn])

    # 1. the command fails: nothing is stored, the prior version stays, the operator is told
    make_due(courier, cred)
    courier.until(lambda: "CredentialRotationFailed" in steps(courier, cred), "the rotation to fail", ids=[cred])
    assert courier.versions(cred) == [(1, "active")]
    assert steps(courier, cred) == ["CredentialRotationStarted", "CredentialRotationFailed"]
    failed = [b for t, b in courier.outbox(cred) if t == "CredentialRotationFailed"][0]
    assert (failed["stage"], failed["error"]) == ("command", "exited with status 3"), failed
    policy = courier.db.rows("SELECT * FROM courier.credential_rotation_policies WHERE credential_id = %s", cred)[0]
    assert (policy["state"], policy["last_result"], policy["last_error"]) == ("idle", "failed", "exited with status 3")
    failures = courier.db.rows("SELECT * FROM courier.failures WHERE error_code = 'rotation_command_failed'")
    assert len(failures) == 1 and courier.db.value(
        "SELECT count(*) FROM courier.escalations WHERE failure_id = %s", failures[0]["id"]) == 1
    assert "partial output" not in courier.daemon.log()

    # 2. the command prints a secret the vendor refuses: stored, verification fails, the prior version stays
    courier.ctl("credential", "rotation", cred, "--rotate-every", "30d",
                "--rotation-command", printing(courier, refused_key))
    make_due(courier, cred)
    courier.until(lambda: courier.versions(cred) == [(1, "active"), (2, "failed")], "the verification to fail",
                  ids=[cred, conn])
    assert steps(courier, cred)[2:] == ["CredentialRotationStarted", "CredentialRotationVersionStored",
                                        "CredentialRotationFailed"]
    failed = [b for t, b in courier.outbox(cred) if t == "CredentialRotationFailed"][-1]
    assert failed["stage"] == "verification" and failed["version"] == 2, failed

    run = courier.enqueue(conn, operation="send", path="/v1/messages", body="{}")
    courier.wait_run(run, "completed")
    assert request_key(vendor) == old_key
    assert courier.connection_row(conn)["status"] == "active"
    courier.assert_no_secret_leaks(vendor)


def test_a_due_rotation_without_a_command_raises_rotation_due_once(courier, make_vendor):
    old_key = new_secret("sk_old_")
    vendor = api_key_setup(courier, make_vendor, old_key)
    cred = courier.credential(old_key, rotate_every="30d")
    courier.connection(vendor.base_url, auth="api_key", credential=cred, api_key_header="X-Key")
    courier.start()
    make_due(courier, cred)
    courier.until(lambda: "CredentialRotationDue" in steps(courier, cred), "CredentialRotationDue", ids=[cred])
    courier.stays(lambda: steps(courier, cred) == ["CredentialRotationDue"], "raised once per due period", 1.0)
    foreign = courier.ctl("credential", "rotation", cred, "--clear", "--tenant", "globex", check=False)
    assert foreign.returncode == 0 and "has no rotation policy" in foreign.stdout, foreign
    foreign = courier.ctl("credential", "rotation", cred, "--rotate-every", "1d", "--tenant", "globex", check=False)
    assert foreign.returncode == 1 and f'no credential "{cred}"' in foreign.stderr, foreign.stderr
    failures = courier.db.rows("SELECT * FROM courier.failures WHERE error_code = 'credential_rotation_due'")
    assert len(failures) == 1 and courier.db.value(
        "SELECT count(*) FROM courier.escalations WHERE failure_id = %s", failures[0]["id"]) == 1
    assert courier.versions(cred) == [(1, "active")]


def test_an_auth_refusal_of_a_static_credential_starts_its_rotation_and_the_run_goes_on(courier, make_vendor):
    old_key, new_key = new_secret("sk_old_"), new_secret("sk_new_")
    vendor = api_key_setup(courier, make_vendor, old_key)
    cred = courier.credential(old_key, rotate_every="90d", rotation_command=printing(courier, new_key))
    conn = courier.connection(vendor.base_url, auth="api_key", credential=cred, api_key_header="X-Key",
                              health_check="GET /health", expect_status=200)
    courier.start()
    courier.until(lambda: courier.connection_row(conn)["health"] == "healthy", "the first passing probe", ids=[conn])

    vendor.require_api_key("X-Key", new_key)   # the vendor revoked the old key
    run = courier.enqueue(conn, operation="send", path="/v1/messages", body="{}")
    r = courier.wait_run(run, "completed", timeout=20)
    assert r["attempts"] >= 1
    assert courier.versions(cred) == [(1, "inactive"), (2, "active")]
    assert steps(courier, cred) == ["CredentialRotationStarted", "CredentialRotationVersionStored",
                                    "CredentialRotated"]
    started = [b for t, b in courier.outbox(cred) if t == "CredentialRotationStarted"][0]
    assert started["reason"] == f"auth failure on connection {conn}", started
    assert request_key(vendor) == new_key
    assert courier.connection_row(conn)["status"] == "active"
    courier.assert_no_secret_leaks(vendor)
