"""End to end: the operator CLI (pgcourierctl) for integration runs (sql/schema/40_integrations.sql):
connections, sealed credentials and their rotation, runs (enqueue, list, show, replay) and the runs section of status.
Every check goes through pgcourierctl's exit code and output and the rows it leaves in a real
PostgreSQL; no daemon is involved (run outcomes are recorded with the daemon's SQL functions)."""
import base64
import hashlib
import hmac
import os
import re
import secrets
import subprocess
import urllib.parse

import pytest
from conftest import PGCOURIERCTL

ID_LINE = re.compile(r"(conn|cred|run)_\S+\n")


def only_id(result, prefix):
    """The id that is the whole of stdout."""
    assert ID_LINE.fullmatch(result.stdout) and result.stdout.startswith(prefix + "_"), result.stdout
    return result.stdout.strip()


def secret_file(tmp_path, content, name="secret"):
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return str(path)


def create_credential(ctl, tmp_path, secret, *options, tenant="acme"):
    path = secret_file(tmp_path, secret, "cred-" + hashlib.sha1(secret.encode()).hexdigest()[:8])
    return only_id(ctl("credential", "create", "--tenant", tenant, "--from-file", path, *options), "cred")


def create_connection(ctl, *options, tenant="acme", base_url="https://api.example.com"):
    return only_id(ctl("connection", "create", "--tenant", tenant, "--provider", "example", "--base-url", base_url,
                       *options), "conn")


def enqueue(ctl, connection, *options, tenant="acme", operation="create_customer"):
    return only_id(ctl("run", "enqueue", "--tenant", tenant, "--connection", connection, "--operation", operation,
                       *options), "run")


def expected_fingerprint(master_key, secret):
    """SecretBox::Fingerprint: HMAC-SHA256 under a key derived from the master key, 16 hex digits."""
    key = base64.b64decode(open(master_key).read().strip())
    derived = hmac.new(key, b"pgcourier credential fingerprint v1", hashlib.sha256).digest()
    return "fp_" + hmac.new(derived, secret.encode(), hashlib.sha256).hexdigest()[:16]


def shown_time(db, timestamp):
    """A timestamp as pgcourierctl prints it (to the second, in the server's time zone)."""
    return db.value("SELECT date_trunc('second', %s::timestamptz)::text", timestamp)


def claim(db, run_id, worker="w1"):
    """What the daemon's claim does to a run: running, leased."""
    db.query("UPDATE courier.runs SET status = 'running', lease_owner = %s, lease_expires_at = now() + interval '1 minute', "
             "started_at = now() WHERE id = %s", worker, run_id)


def record(db, run_id, attempt, status, status_code=None, outcome="ok", error_class=None, error_code=None,
           summary=None, next_action=None, external_ref=None, worker="w1"):
    """One attempt's outcome through courier.record_run_outcomes(), as the daemon records it."""
    applied = db.query(
        "SELECT * FROM courier.record_run_outcomes(%s, ARRAY[%s], ARRAY[%s]::int[], ARRAY[%s], ARRAY[%s], "
        "ARRAY[0]::bigint[], ARRAY[%s]::int[], ARRAY[%s], ARRAY[%s]::text[], ARRAY[%s]::text[], ARRAY[%s], "
        "ARRAY[%s]::text[], ARRAY[NULL]::text[], ARRAY[(extract(epoch FROM now()) * 1000000)::bigint], "
        "ARRAY[12.5]::float8[], ARRAY[%s]::text[], ARRAY[%s]::text[], ARRAY[1])",
        worker, run_id, attempt, worker, status, status_code, outcome, error_class, error_code,
        error_class is not None, summary, external_ref, next_action)
    assert applied == [(run_id,)], applied


def complete(db, run_id, attempt=1):
    claim(db, run_id)
    record(db, run_id, attempt, "completed", status_code=201, external_ref="cus_1")


# Connections -----------------------------------------------------------------------------------------

def test_connection_create_prints_only_the_id_and_stores_every_setting(db, ctl, tmp_path):
    cred = create_credential(ctl, tmp_path, "tok-123", "--expires-at", "2099-01-01T00:00:00Z")
    conn = create_connection(ctl, "--auth", "bearer", "--credential", cred, "--health-check", "get /v1/health",
                             "--expect-status", "204", "--policy", "strict", "--status", "pending",
                             "--rate-limit", "2.5", "--burst", "10", "--max-in-flight", "4", "--id", "conn_stripe")
    assert conn == "conn_stripe"
    row = db.rows("SELECT * FROM courier.connections WHERE id = %s", conn)[0]
    assert (row["tenant_id"], row["provider"], row["base_url"], row["auth_mode"], row["credential_id"]) == \
        ("acme", "example", "https://api.example.com", "bearer", cred)
    assert (row["health_check_method"], row["health_check_path"], row["health_check_expected_status"]) == \
        ("GET", "/v1/health", 204)
    assert (row["policy"], row["status"], row["rate_limit_per_second"], row["rate_limit_burst"],
            row["max_in_flight"]) == ("strict", "pending", 2.5, 10, 4)

    oauth = create_connection(ctl, "--auth", "oauth2_client_credentials", "--credential", cred,
                              "--token-url", "https://auth.example.com/token", "--client-id", "client-1",
                              "--scopes", "read write")
    minimal = create_connection(ctl)
    rows = {r["id"]: r for r in db.rows("SELECT * FROM courier.connections WHERE id IN (%s, %s)", oauth, minimal)}
    assert (rows[oauth]["token_url"], rows[oauth]["client_id"], rows[oauth]["scopes"]) == \
        ("https://auth.example.com/token", "client-1", "read write")
    m = rows[minimal]
    assert (m["auth_mode"], m["credential_id"], m["status"], m["health_check_path"], m["policy"]) == \
        ("none", None, "active", None, "default")


@pytest.mark.parametrize("options, message", [
    (["--auth", "bearer"], "--auth bearer needs --credential"),
    (["--auth", "api_key"], "--auth api_key needs --credential"),
    (["--auth", "kerberos", "--credential", "CRED"], "--auth takes none, api_key, bearer, basic or"),
    (["--credential", "CRED"], "--credential needs an --auth mode other than none"),
    (["--auth", "oauth2_client_credentials", "--credential", "CRED", "--client-id", "c"],
     "needs --token-url and --client-id"),
    (["--auth", "oauth2_client_credentials", "--credential", "CRED", "--token-url", "https://a/t"],
     "needs --token-url and --client-id"),
    (["--auth", "oauth2_client_credentials", "--credential", "CRED", "--token-url", "/token", "--client-id", "c"],
     "--token-url takes an absolute http:// or https:// URL"),
    (["--auth", "bearer", "--credential", "CRED", "--token-url", "https://a/t"], "go with --auth oauth2"),
    (["--auth", "bearer", "--credential", "CRED", "--api-key-header", "X-Key"], "--api-key-header goes with"),
    (["--health-check", "GET"], "--health-check takes 'METHOD /path'"),
    (["--health-check", "GET health"], "--health-check takes 'METHOD /path'"),
    (["--health-check", "/health"], "--health-check takes 'METHOD /path'"),
    (["--health-check", "GET /a b"], "--health-check takes 'METHOD /path'"),
    (["--expect-status", "204"], "--expect-status goes with --health-check"),
    (["--health-check", "GET /h", "--expect-status", "99"], "--expect-status takes a whole number from 100 to 599"),
    (["--status", "retired"], "--status takes active or pending"),
    (["--rate-limit", "0"], "--rate-limit takes requests per second"),
    (["--rate-limit", "fast"], "--rate-limit takes requests per second"),
    (["--burst", "0"], "--burst takes a whole number from 1"),
    (["--max-in-flight", "-1"], "--max-in-flight takes a whole number from 1"),
])
def test_connection_create_rejects_an_invalid_option_with_exit_2_and_creates_nothing(
        db, ctl, tmp_path, options, message):
    cred = create_credential(ctl, tmp_path, "s3cret")
    options = [cred if o == "CRED" else o for o in options]
    result = ctl("connection", "create", "--tenant", "acme", "--provider", "p", "--base-url", "https://a.example",
                 *options, check=False)
    assert result.returncode == 2, result
    assert message in result.stderr and result.stderr.startswith("pgcourierctl: "), result.stderr
    assert result.stdout == ""
    assert db.value("SELECT count(*) FROM courier.connections") == 0


@pytest.mark.parametrize("base_url", ["ftp://files.example.com", "api.example.com/v1", "https://", "http:///path",
                                      "https://a.example/x y"])
def test_connection_create_needs_an_absolute_http_base_url(db, ctl, base_url):
    result = ctl("connection", "create", "--tenant", "acme", "--provider", "p", "--base-url", base_url, check=False)
    assert result.returncode == 2 and "--base-url takes an absolute http:// or https:// URL" in result.stderr, result
    assert db.value("SELECT count(*) FROM courier.connections") == 0


def test_connection_create_needs_tenant_provider_and_base_url(ctl):
    result = ctl("connection", "create", "--tenant", "acme", "--base-url", "https://a.example", check=False)
    assert (result.returncode, result.stderr) == (2, "pgcourierctl: --provider is required\n")


def test_connection_create_refuses_an_unknown_revoked_or_other_tenants_credential_with_exit_1(db, ctl, tmp_path):
    globex = create_credential(ctl, tmp_path, "globex-secret", tenant="globex")
    revoked = create_credential(ctl, tmp_path, "old-secret")
    db.query("UPDATE courier.credentials SET status = 'revoked' WHERE id = %s", revoked)
    cases = [(globex, f"credential {globex} belongs to tenant globex"),
             ("cred_nope", "no credential cred_nope"),
             (revoked, f"credential {revoked} is revoked")]
    for cred, message in cases:
        result = ctl("connection", "create", "--tenant", "acme", "--provider", "p", "--base-url", "https://a.example",
                     "--auth", "api_key", "--credential", cred, check=False)
        assert result.returncode == 1 and message in result.stderr and result.stdout == "", (cred, result)
    assert db.value("SELECT count(*) FROM courier.connections") == 0


def test_connection_list_and_show_redact_the_url_and_show_credential_version_expiry_and_failures(db, ctl, tmp_path):
    cred = create_credential(ctl, tmp_path, "tok-abc", "--expires-at", "2099-01-01T00:00:00Z")
    # user:password@ is refused at the door; a row holding one anyway (checks off) is still shown redacted.
    url = "https://user:hunter2@api.example.com/v1?token=querysecret"
    conn = create_connection(ctl, "--auth", "api_key", "--credential", cred, "--health-check", "HEAD /ping",
                             base_url="https://api.example.com/v1?token=querysecret")
    db.unchecked("UPDATE courier.connections SET base_url = %s WHERE id = %s", url, conn)
    other = create_connection(ctl, tenant="globex", base_url="https://globex.example")
    run = enqueue(ctl, conn)
    db.query("SELECT courier.record_probe(%s, false, 503, 'probe got 503', 3)", conn)

    listed = ctl("connection", "list").stdout
    assert "hunter2" not in listed and "querysecret" not in listed, listed
    header, *rows = listed.splitlines()
    assert header.split() == ["connection", "tenant", "provider", "base", "url", "auth", "status", "health", "last",
                              "checked", "runs", "waiting"], header
    line = next(r for r in rows if r.startswith(conn))
    assert "https://***@api.example.com/v1?***" in line and " api_key " in line and " degraded " in line, line
    assert line.split()[-1] == "1", line  # the pending run
    assert other in listed
    only_acme = ctl("connection", "list", "--tenant", "acme").stdout
    assert conn in only_acme and other not in only_acme, only_acme

    shown = ctl("connection", "show", conn).stdout
    assert "hunter2" not in shown and "querysecret" not in shown, shown
    expires = shown_time(db, "2099-01-01T00:00:00Z")
    assert f"  auth:          api_key with credential {cred} version 1, expires {expires}\n" in shown, shown
    assert "  key header:    X-Api-Key\n" in shown
    assert "  health check:  HEAD /ping expecting any 2xx\n" in shown
    assert "1 consecutive probe failure; last error: probe got 503" in shown, shown
    assert "  runs waiting:  1\n" in shown and "  open failures: 1\n" in shown, shown
    assert run not in shown  # counts, not runs

    missing = ctl("connection", "show", "conn_nope", check=False)
    assert (missing.returncode, missing.stderr) == (1, "pgcourierctl: no connection conn_nope\n")


def test_retire_says_pending_runs_become_poison_and_activate_revives_pending_or_degraded_but_not_retired(db, ctl):
    conn = create_connection(ctl)
    enqueue(ctl, conn)
    enqueue(ctl, conn, operation="other")
    out = ctl("connection", "retire", conn).stdout
    assert out == f"retired {conn} (was active); its 2 pending runs and any run enqueued for it from now on " \
                  "become poison when claimed\n", out
    assert db.value("SELECT status FROM courier.connections WHERE id = %s", conn) == "retired"
    assert ctl("connection", "retire", conn).stdout == f"{conn} is already retired\n"
    refused = ctl("connection", "activate", conn, check=False)
    assert refused.returncode == 1 and "is retired; a retired connection stays retired" in refused.stderr, refused
    assert db.value("SELECT status FROM courier.connections WHERE id = %s", conn) == "retired"

    pending = create_connection(ctl, "--status", "pending")
    assert ctl("connection", "activate", pending).stdout == f"activated {pending} (was pending); 0 pending runs can " \
                                                           "run again\n"
    degraded = create_connection(ctl)
    assert db.value("SELECT courier.degrade_connection(%s, 'credential refused (401)')", degraded) is True
    assert ctl("connection", "activate", degraded).stdout.startswith(f"activated {degraded} (was degraded)")
    assert db.rows("SELECT status, status_reason FROM courier.connections WHERE id IN (%s, %s)", pending, degraded) \
        == [{"status": "active", "status_reason": None}] * 2
    assert ctl("connection", "activate", degraded).stdout == f"{degraded} is already active\n"
    for command in ("retire", "activate"):
        result = ctl("connection", command, "conn_nope", check=False)
        assert (result.returncode, result.stderr) == (1, "pgcourierctl: no connection conn_nope\n")


# Credentials -----------------------------------------------------------------------------------------

def all_courier_rows_as_text(db):
    """Every row of every table of the courier schema, as text."""
    tables = [t for (t,) in db.query("SELECT tablename FROM pg_tables WHERE schemaname = 'courier'")]
    assert "credential_versions" in tables and "connections" in tables
    return "\n".join(text for t in tables for (text,) in db.query(f'SELECT t::text FROM courier."{t}" t'))


def test_credential_create_seals_the_secret_and_neither_the_database_nor_any_output_holds_it(
        db, ctl, tmp_path, master_key):
    secret = "sk_live_Zq8VtR2pX7nLw4Yh"
    path = secret_file(tmp_path, secret + "\r\n")
    created = ctl("credential", "create", "--tenant", "acme", "--from-file", path, "--name", "stripe live",
                  "--expires-at", "2099-06-01T00:00:00Z")
    cred = only_id(created, "cred")
    assert created.stderr == ""
    assert db.rows("SELECT tenant_id, name, status FROM courier.credentials WHERE id = %s", cred) == \
        [{"tenant_id": "acme", "name": "stripe live", "status": "active"}]
    version = db.rows("SELECT * FROM courier.credential_versions WHERE credential_id = %s", cred)
    assert len(version) == 1, version
    v = version[0]
    assert (v["version"], v["status"]) == (1, "active") and v["activated_at"] is not None, v
    assert v["sealed_secret"].startswith("v1:") and secret not in v["sealed_secret"], v
    # The fingerprint is of the secret without its CRLF.
    assert re.fullmatch(r"fp_[0-9a-f]{16}", v["fingerprint"]) and \
        v["fingerprint"] == expected_fingerprint(master_key, secret), v
    assert db.value("SELECT %s::timestamptz = %s", "2099-06-01T00:00:00Z", v["expires_at"]) is True

    conn = create_connection(ctl, "--auth", "bearer", "--credential", cred)
    outputs = [created.stdout, ctl("credential", "show", cred).stdout, ctl("credential", "list").stdout,
               ctl("connection", "show", conn).stdout, ctl("connection", "list").stdout, ctl("status").stdout]
    for out in outputs:
        assert secret not in out and v["sealed_secret"] not in out, out
    assert secret not in all_courier_rows_as_text(db)


def test_credential_create_with_an_id_seals_the_secret_bound_to_that_id(db, ctl, tmp_path, master_key):
    aead = pytest.importorskip("cryptography.hazmat.primitives.ciphers.aead")
    cred = create_credential(ctl, tmp_path, "user:pa55word\n", "--id", "cred_basic")  # one LF is dropped
    assert cred == "cred_basic"
    sealed = db.value("SELECT sealed_secret FROM courier.credential_versions WHERE credential_id = %s", cred)
    raw = base64.b64decode(sealed[len("v1:"):])
    box = aead.AESGCM(base64.b64decode(open(master_key).read().strip()))
    assert box.decrypt(raw[:12], raw[12:], cred.encode()) == b"user:pa55word"
    with pytest.raises(Exception):
        box.decrypt(raw[:12], raw[12:], b"cred_other")  # bound to its credential: it opens nowhere else


def test_credential_create_reads_a_piped_secret_from_dev_stdin(db, db_url, master_key):
    env = {**os.environ, "DATABASE_URL": db_url, "PGCOURIER_MASTER_KEY_FILE": master_key}
    result = subprocess.run([PGCOURIERCTL, "credential", "create", "--tenant", "acme", "--from-file", "/dev/stdin"],
                            input="piped-secret\n", env=env, capture_output=True, text=True, timeout=60)
    cred = only_id(result, "cred")
    assert db.value("SELECT fingerprint FROM courier.credential_versions WHERE credential_id = %s", cred) == \
        expected_fingerprint(master_key, "piped-secret")


@pytest.mark.parametrize("content, message", [
    ("", "holds no secret (it is empty)"),
    ("\n", "holds no secret (it is empty)"),
    ("\r\n", "holds no secret (it is empty)"),
    ("token\n\n", "holds more than one line"),
    ("line one\nline two", "holds more than one line"),
])
def test_credential_create_refuses_a_file_without_a_one_line_secret(db, ctl, tmp_path, content, message):
    result = ctl("credential", "create", "--tenant", "acme", "--from-file", secret_file(tmp_path, content),
                 check=False)
    assert result.returncode == 1 and message in result.stderr and result.stdout == "", result
    assert db.value("SELECT count(*) FROM courier.credentials") == 0


def test_credential_create_refuses_a_missing_file_and_an_expiry_in_the_past(db, ctl, tmp_path):
    missing = ctl("credential", "create", "--tenant", "acme", "--from-file", str(tmp_path / "nope"), check=False)
    assert missing.returncode == 1 and "cannot read" in missing.stderr, missing
    past = ctl("credential", "create", "--tenant", "acme", "--from-file", secret_file(tmp_path, "x"),
               "--expires-at", "2001-01-01T00:00:00Z", check=False)
    assert past.returncode == 1 and "expires_at is not in the future" in past.stderr, past
    no_tenant = ctl("credential", "create", "--from-file", secret_file(tmp_path, "x"), check=False)
    assert (no_tenant.returncode, no_tenant.stderr) == (2, "pgcourierctl: --tenant is required\n")
    assert db.value("SELECT count(*) FROM courier.credentials") == 0


def test_credential_rotate_adds_a_rotating_version_once_and_refuses_the_same_secret(db, ctl, tmp_path, master_key):
    cred = create_credential(ctl, tmp_path, "first-secret")
    same = ctl("credential", "rotate", cred, "--from-file", secret_file(tmp_path, "first-secret\n", "same"),
               check=False)
    assert same.returncode == 1 and "the same secret as the active version (1)" in same.stderr, same
    assert db.value("SELECT count(*) FROM courier.credential_versions WHERE credential_id = %s", cred) == 1

    rotated = ctl("credential", "rotate", cred, "--from-file", secret_file(tmp_path, "second-secret", "second"),
                  "--expires-at", "2099-01-01T00:00:00Z")
    assert rotated.stdout == "2\n", rotated
    versions = db.rows("SELECT version, status, sealed_secret, fingerprint, expires_at IS NOT NULL AS expires "
                       "FROM courier.credential_versions WHERE credential_id = %s ORDER BY version", cred)
    assert [(v["version"], v["status"], v["expires"]) for v in versions] == [(1, "active", False),
                                                                             (2, "rotating", True)]
    assert versions[1]["sealed_secret"].startswith("v1:")
    assert versions[1]["fingerprint"] == expected_fingerprint(master_key, "second-secret") != versions[0]["fingerprint"]
    assert db.value("SELECT status FROM courier.credentials WHERE id = %s", cred) == "rotating"

    again = ctl("credential", "rotate", cred, "--from-file", secret_file(tmp_path, "third-secret", "third"),
                check=False)
    assert again.returncode == 1 and "version 2 is already rotating" in again.stderr, again
    assert db.value("SELECT count(*) FROM courier.credential_versions WHERE credential_id = %s", cred) == 2

    # The daemon's verification promotes version 2; the next rotation is version 3.
    version_id = db.value("SELECT id FROM courier.credential_versions WHERE credential_id = %s AND version = 2", cred)
    assert db.value("SELECT courier.finish_rotation(%s, true, NULL, NULL)", version_id) is True
    same_as_2 = ctl("credential", "rotate", cred, "--from-file", secret_file(tmp_path, "second-secret", "s2"),
                    check=False)
    assert same_as_2.returncode == 1 and "the same secret as the active version (2)" in same_as_2.stderr, same_as_2
    assert ctl("credential", "rotate", cred, "--from-file", secret_file(tmp_path, "third-secret", "t")).stdout == "3\n"


def test_credential_rotate_refuses_an_unknown_or_revoked_credential(db, ctl, tmp_path):
    cred = create_credential(ctl, tmp_path, "a-secret")
    db.query("UPDATE courier.credentials SET status = 'revoked' WHERE id = %s", cred)
    path = secret_file(tmp_path, "b-secret", "b")
    revoked = ctl("credential", "rotate", cred, "--from-file", path, check=False)
    assert revoked.returncode == 1 and f"credential {cred} is revoked" in revoked.stderr, revoked
    unknown = ctl("credential", "rotate", "cred_nope", "--from-file", path, check=False)
    assert (unknown.returncode, unknown.stderr) == (1, "pgcourierctl: no credential cred_nope\n")
    assert db.value("SELECT count(*) FROM courier.credential_versions") == 1


def test_credential_show_and_list_give_versions_fingerprints_and_users_but_never_the_secret(db, ctl, tmp_path):
    soon = create_credential(ctl, tmp_path, "soon-secret", "--name", "soon", "--expires-at", "2090-01-01T00:00:00Z")
    later = create_credential(ctl, tmp_path, "later-secret", "--expires-at", "2095-01-01T00:00:00Z")
    never = create_credential(ctl, tmp_path, "never-secret", tenant="globex")
    ctl("credential", "rotate", soon, "--from-file", secret_file(tmp_path, "soon-secret-2", "s2"))
    conn = create_connection(ctl, "--auth", "basic", "--credential", soon)
    fingerprints = dict(db.query("SELECT version, fingerprint FROM courier.credential_versions "
                                 "WHERE credential_id = %s", soon))

    shown = ctl("credential", "show", soon).stdout
    for secret in ("soon-secret", "v1:"):
        assert secret not in shown, shown
    lines = shown.splitlines()
    assert lines[0] == f"credential {soon}  tenant=acme  name=soon  rotating", shown
    expires = shown_time(db, "2090-01-01T00:00:00Z")
    assert lines[1].startswith(f"  active:  version 1  {fingerprints[1]}  expires {expires} ("), shown
    at = lines.index("versions:")
    assert lines[at + 1].split()[:3] == ["version", "status", "fingerprint"], shown
    assert lines[at + 2].split()[:3] == ["2", "rotating", fingerprints[2]], shown
    assert lines[at + 3].split()[:3] == ["1", "active", fingerprints[1]], shown
    users = lines[lines.index("connections using it:") + 2]
    assert users.split()[:3] == [conn, "example", "basic"], shown
    assert ctl("credential", "show", later).stdout.endswith("connections using it: none\n")
    missing = ctl("credential", "show", "cred_nope", check=False)
    assert (missing.returncode, missing.stderr) == (1, "pgcourierctl: no credential cred_nope\n")

    listed = ctl("credential", "list").stdout.splitlines()
    assert [line.split()[0] for line in listed] == ["credential", soon, later, never], listed  # soonest expiry first
    assert "never" in listed[3] and "globex" in listed[3], listed
    assert [line.split()[0] for line in ctl("credential", "list", "--tenant", "globex").stdout.splitlines()] == \
        ["credential", never]
    assert not any(s in line for s in ("soon-secret", "later-secret", "never-secret") for line in listed), listed


# Runs ------------------------------------------------------------------------------------------------

def test_run_enqueue_prints_only_the_id_stores_the_request_and_is_idempotent_by_key(db, ctl):
    conn = create_connection(ctl)
    args = ("run", "enqueue", "--tenant", "acme", "--connection", conn, "--operation", "create_customer",
            "--method", "put", "--path", "/v1/customers/7", "--body", '{"name": "Ada"}',
            "--headers", '{"X-Source": "ops"}', "--idempotency-key", "cust-7", "--trace-id", "trace-1",
            "--external-ref", "/id")
    first = ctl(*args)
    run = only_id(first, "run")
    assert first.stderr == ""
    row = db.rows("SELECT * FROM courier.runs WHERE id = %s", run)[0]
    assert (row["tenant_id"], row["connection_id"], row["operation"], row["method"], row["path"], row["body"],
            row["headers"], row["idempotency_key"], row["trace_id"], row["external_ref_pointer"], row["status"]) == \
        ("acme", conn, "create_customer", "PUT", "/v1/customers/7", '{"name": "Ada"}', {"X-Source": "ops"}, "cust-7",
         "trace-1", "/id", "pending")

    second = ctl(*args)
    assert second.stdout == first.stdout
    assert "idempotency key cust-7 names an earlier run; nothing new was queued" in second.stderr, second
    assert db.value("SELECT count(*) FROM courier.runs") == 1

    defaults = enqueue(ctl, conn)
    assert db.rows("SELECT method, path, headers, body FROM courier.runs WHERE id = %s", defaults) == \
        [{"method": "POST", "path": "/", "headers": {}, "body": None}]


def test_run_enqueue_for_an_unknown_or_foreign_connection_is_refused_and_creates_nothing(db, ctl):
    globex = create_connection(ctl, tenant="globex")
    for connection in ("conn_nope", globex):
        result = ctl("run", "enqueue", "--tenant", "acme", "--connection", connection, "--operation", "op", check=False)
        assert result.returncode == 1, result
        assert f"{connection} is not a connection of tenant acme" in result.stderr, result
    assert db.value("SELECT count(*) FROM courier.runs") == 0


@pytest.mark.parametrize("options, message", [
    (["--headers", "[1, 2]"], "--headers takes a JSON object"),
    (["--path", "v1/x"], "--path takes a path that starts with /"),
    (["--method", "PO ST"], "--method takes an HTTP method"),
    (["--external-ref", "id"], "--external-ref takes a JSON pointer"),
])
def test_run_enqueue_rejects_an_invalid_request_with_exit_2(db, ctl, options, message):
    result = ctl("run", "enqueue", "--tenant", "acme", "--connection", "conn_x", "--operation", "op", *options,
                 check=False)
    assert result.returncode == 2 and message in result.stderr, result
    assert db.value("SELECT count(*) FROM courier.runs") == 0


def test_run_show_lists_attempts_and_failures_and_replay_refuses_a_completed_run(db, ctl):
    conn = create_connection(ctl)
    run = enqueue(ctl, conn, "--idempotency-key", "k1", "--trace-id", "trace-9")
    claim(db, run)
    record(db, run, 1, "pending", status_code=503, outcome="http_error", error_class="transient",
           error_code="http_503", summary="upstream said 503", next_action="retry")
    claim(db, run)
    record(db, run, 2, "dead_lettered", status_code=422, outcome="http_error", error_class="validation",
           error_code="http_422", summary="customer exists", next_action="escalate")

    lines = ctl("run", "show", run).stdout.splitlines()
    assert lines[0] == f"run {run}  tenant=acme", lines
    assert f"  connection:   {conn}  example" in lines and "  status:       dead_lettered after 2 attempts" in lines
    assert "  idempotency:  k1" in lines and "  trace id:     trace-9" in lines, lines
    attempts = lines[lines.index("attempts:") + 2:lines.index("failures:")]
    assert [a.split()[0] for a in attempts] == ["1", "2"], lines
    assert "[http_503] upstream said 503 (v1)" in attempts[0] and "http_422" in attempts[1], attempts
    failures = lines[lines.index("failures:") + 2:]
    failure_ids = [f for (f,) in db.query("SELECT id FROM courier.failures WHERE source_id = %s ORDER BY created_at, id",
                                          run)]
    assert [f.split()[0] for f in failures] == failure_ids and len(failure_ids) == 2, lines
    escalations = db.value("SELECT count(*) FROM courier.escalations WHERE source_id = %s", run)
    assert escalations == 1 and "escalate" in failures[1] and "validation" in failures[1], failures

    # Dead-lettered: replayed with a fresh budget. Pending: nothing to do.
    assert ctl("run", "replay", run).stdout == f"replayed {run} (was dead_lettered); it runs again with a fresh " \
                                               "attempt budget\n"
    assert db.rows("SELECT status, attempts, attempt_budget_base FROM courier.runs WHERE id = %s", run) == \
        [{"status": "pending", "attempts": 2, "attempt_budget_base": 2}]
    assert ctl("run", "replay", run).stdout == f"{run} is pending; nothing to replay\n"

    complete(db, run, attempt=3)
    refused = ctl("run", "replay", run, check=False)
    assert refused.returncode == 1, refused
    assert f"run {run} is completed; a completed run is never executed again" in refused.stderr, refused
    assert db.value("SELECT status FROM courier.runs WHERE id = %s", run) == "completed"
    assert "  external ref: cus_1  (pointer -)" in ctl("run", "show", run).stdout.splitlines()

    unknown = ctl("run", "replay", "run_nope", check=False)
    assert unknown.returncode == 1 and "run run_nope does not exist" in unknown.stderr, unknown
    missing = ctl("run", "show", "run_nope", check=False)
    assert (missing.returncode, missing.stderr) == (1, "pgcourierctl: no run run_nope\n")


def test_run_list_filters_by_tenant_and_status_newest_first(db, ctl):
    conn = create_connection(ctl)
    globex_conn = create_connection(ctl, tenant="globex")
    done = enqueue(ctl, conn, operation="first")
    complete(db, done)
    waiting = enqueue(ctl, conn, operation="second")
    other = enqueue(ctl, globex_conn, tenant="globex")

    def ids(*options):
        out = ctl("run", "list", *options).stdout.splitlines()
        assert out[0].split()[:2] == ["run", "tenant"], out
        return [line.split()[0] for line in out[1:]]

    assert set(ids()) == {done, waiting, other}
    assert ids("--tenant", "acme") == [waiting, done]
    assert ids("--status", "completed") == [done]
    assert ids("--tenant", "globex", "--status", "pending") == [other]
    assert len(ids("--limit", "1")) == 1
    assert ctl("run", "list", "--status", "failed").stdout == "no runs\n"
    bad = ctl("run", "list", "--status", "done", check=False)
    assert bad.returncode == 2 and "--status takes pending, running" in bad.stderr, bad


def test_status_adds_a_runs_section_with_queue_metrics_and_connections_needing_attention(db, ctl, tmp_path):
    cred = create_credential(ctl, tmp_path, "expiring", "--expires-at",
                             db.value("SELECT (now() + interval '3 days')::text"))
    healthy = create_connection(ctl, "--auth", "bearer", "--credential", cred)
    degraded = create_connection(ctl)
    pending = create_connection(ctl, "--status", "pending")
    enqueue(ctl, healthy)
    enqueue(ctl, degraded)
    dead = enqueue(ctl, healthy, operation="doomed")
    claim(db, dead)
    record(db, dead, 1, "dead_lettered", status_code=400, outcome="http_error", error_class="validation",
           error_code="http_400", summary="bad request", next_action="escalate")
    db.query("SELECT courier.degrade_connection(%s, 'credential refused (401)')", degraded)

    out = ctl("status").stdout
    assert out.startswith("status"), out  # the deliveries table is still first
    runs = out[out.index("\nruns:\n"):]
    attention_at = runs.index("connections pending, degraded or unhealthy:")
    metrics = dict(re.findall(r"^  ([a-z][a-z0-9 -]*?\S)\s{2,}(\d+)$", runs[:attention_at], re.M))
    expected = db.rows("SELECT * FROM courier.run_queue_metrics(interval '7 days')")[0]
    assert metrics == {"due now": "1", "scheduled later": "0", "waiting for their connection": "1", "running": "0",
                       "dead-lettered": "1", "connections unhealthy": "0", "connections degraded": "1",
                       "credentials expiring within 7 days": "1",
                       "open escalations": str(expected["open_escalations"])}, runs
    assert (expected["due"], expected["waiting"], expected["dead_lettered"]) == (1, 1, 1)
    attention = runs[attention_at:].splitlines()
    listed = {line.split()[0]: line for line in attention[2:]}
    assert set(listed) == {degraded, pending}, runs
    assert "credential refused (401)" in listed[degraded] and " degraded " in listed[degraded], listed
    assert healthy not in runs


def test_status_and_run_replay_need_no_more_than_the_courier_operator_role(db, db_url, ctl):
    if db.value("SELECT count(*) FROM pg_roles WHERE rolname = 'courier_operator'") == 0:
        pytest.skip("the migrator could not create roles")
    conn = create_connection(ctl)
    db.query("SELECT courier.degrade_connection(%s, 'credential refused (401)')", conn)
    run = enqueue(ctl, conn)
    claim(db, run)
    record(db, run, 1, "dead_lettered", status_code=400, outcome="http_error", error_class="validation",
           error_code="http_400", summary="bad request", next_action="escalate")

    role, password = "ctl_operator_" + secrets.token_hex(4), secrets.token_hex(12)
    db.query(f"CREATE ROLE {role} LOGIN PASSWORD %s IN ROLE courier_operator", password)
    try:
        parts = urllib.parse.urlsplit(db_url)
        url = parts._replace(netloc=f"{role}:{password}@{parts.hostname}:{parts.port}").geturl()

        def as_operator(*args):
            return subprocess.run([PGCOURIERCTL, "--database-url", url, *args], capture_output=True, text=True,
                                  timeout=60, env={k: v for k, v in os.environ.items() if k != "DATABASE_URL"})

        status = as_operator("status")
        assert status.returncode == 0, status.stderr
        assert "\nruns:\n" in status.stdout and "  dead-lettered                       1\n" in status.stdout, status.stdout
        assert conn in status.stdout and "credential refused (401)" in status.stdout, status.stdout
        replay = as_operator("run", "replay", run)
        assert (replay.returncode, replay.stdout) == (0, f"replayed {run} (was dead_lettered); it runs again with a "
                                                         "fresh attempt budget\n"), replay.stderr
        assert db.value("SELECT status FROM courier.runs WHERE id = %s", run) == "pending"
    finally:
        db.query(f"DROP ROLE {role}")
