"""End to end: integration runs (governed outbound API calls) against a fake vendor on 127.0.0.1
(tests/e2e/vendor.py). Operators set up credentials and connections with pgcourierctl, producers
enqueue runs with pgcourierctl or courier.enqueue_run(), a real pgcourierd calls the vendor, and
every test checks what the vendor received, the rows the daemon left (runs, run_attempts, failures,
escalations, outbox, connections, credential_versions), and that no secret leaked anywhere."""
import base64
import http.client
import json
import re
import secrets
import time

import pytest

from conftest import policy, wait_for
from ops_helpers import metrics_daemon, metrics_port, parse_samples, scrape

TENANT = "acme"
CLIENT_ID = "pgc-client"
FAST = {"poll_interval": "100ms", "rescue_interval": "200ms", "maintenance_interval": "200ms"}
# Quick probes; a single failed probe is not enough to open the circuit unless a test says so.
INTEGRATION = {"health_check_interval": "200ms", "unhealthy_after": 3, "run_when_degraded": False,
               "max_rate_limited_waits": 20, "token_refresh_margin": "60s"}
SECRET_TABLES = ("runs", "run_attempts", "failures", "escalations", "outbox", "connections", "credentials",
                 "credential_versions")


def new_secret(prefix):
    return prefix + secrets.token_urlsafe(24)


def basic_value(user, password):
    return base64.b64encode(f"{user}:{password}".encode()).decode()


class Courier:
    """The operator's and the producer's side of a test: pgcourierctl (every output kept for the leak
    check), SQL, the daemon, and the secrets handed to pgcourier."""

    def __init__(self, ctl, db, tmp_path, daemon_factory, write_policies):
        self._ctl = ctl
        self.db = db
        self.tmp = tmp_path
        self._daemon_factory = daemon_factory
        self._write_policies = write_policies
        self.outputs = []
        self.secrets = set()
        self.run_ids = []
        self.shown = []             # (noun, id) of credentials and connections, shown in the leak check
        self.daemon = None
        self.metrics_port = None

    # --- pgcourierctl ----------------------------------------------------------------------------

    def ctl(self, *args, check=True):
        result = self._ctl(*args, check=check)
        self.outputs.append(f"$ pgcourierctl {' '.join(args)}\n{result.stdout}{result.stderr}")
        return result

    def printed_id(self, *args):
        """Runs a create/enqueue command, which prints only the new id."""
        out = self.ctl(*args).stdout.strip()
        assert out and len(out.split()) == 1, f"pgcourierctl {' '.join(args)} printed {out!r}, expected an id"
        return out

    def secret_file(self, secret):
        self.secrets.add(secret)
        path = self.tmp / f"secret-{len(self.secrets)}-{secrets.token_hex(4)}"
        path.write_text(secret)
        path.chmod(0o600)
        return str(path)

    def credential(self, secret, tenant=TENANT, **options):
        cred = self.printed_id("credential", "create", "--tenant", tenant, "--from-file", self.secret_file(secret),
                               *flags(options))
        self.shown.append(("credential", cred))
        return cred

    def rotate(self, credential_id, secret):
        """credential rotate; returns the new version number."""
        out = self.ctl("credential", "rotate", credential_id, "--from-file", self.secret_file(secret)).stdout.strip()
        assert out.isdigit(), f"credential rotate printed {out!r}, expected a version number"
        return int(out)

    def connection(self, base_url, tenant=TENANT, provider="vendor", **options):
        conn = self.printed_id("connection", "create", "--tenant", tenant, "--provider", provider,
                               "--base-url", base_url, *flags(options))
        self.shown.append(("connection", conn))
        return conn

    def oauth_connection(self, vendor, credential_id, **options):
        return self.connection(vendor.base_url, auth="oauth2_client_credentials", credential=credential_id,
                               token_url=vendor.token_url, client_id=CLIENT_ID, **options)

    def enqueue(self, connection_id, operation="send", tenant=TENANT, **options):
        run_id = self.printed_id("run", "enqueue", "--tenant", tenant, "--connection", connection_id,
                                 "--operation", operation, *flags(options))
        self.run_ids.append(run_id)
        return run_id

    def enqueue_sql(self, connection_id, operation="send", tenant=TENANT, method="POST", path="/", body=None,
                    headers=None, idempotency_key=None, trace_id=None, external_ref=None):
        """The producer's call, courier.enqueue_run(), in its own transaction."""
        run_id = self.db.value("SELECT courier.enqueue_run(%s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s)",
                               tenant, connection_id, operation, method, path, body, json.dumps(headers or {}),
                               idempotency_key, trace_id, external_ref)
        self.run_ids.append(run_id)
        return run_id

    # --- the daemon ------------------------------------------------------------------------------

    def start(self, integration=None, **policy_options):
        """One pgcourierd serving /metrics, with the 'default' policy plus an integration block."""
        block = {**INTEGRATION, **(integration or {})}
        policies = self._write_policies({"default": policy(integration=block, **policy_options)})
        self.daemon = metrics_daemon(self._daemon_factory, "d1", policies_file=policies, **FAST)
        self.metrics_port = metrics_port(self.daemon)
        return self.daemon

    # --- reading state ---------------------------------------------------------------------------

    def run(self, run_id):
        rows = self.db.rows("SELECT * FROM courier.runs WHERE id = %s", run_id)
        assert len(rows) == 1, f"run {run_id} not found"
        return rows[0]

    def attempts(self, run_id):
        """(attempt, status_code, error_class) of each attempt, in order."""
        return [(a["attempt"], a["status_code"], a["error_class"]) for a in self.attempt_rows(run_id)]

    def attempt_rows(self, run_id):
        return self.db.rows("SELECT * FROM courier.run_attempts WHERE run_id = %s ORDER BY attempt", run_id)

    def failures(self, source_id):
        return self.db.rows("SELECT * FROM courier.failures WHERE source_id = %s ORDER BY created_at, id", source_id)

    def escalations(self, source_id):
        return self.db.rows("SELECT * FROM courier.escalations WHERE source_id = %s ORDER BY created_at", source_id)

    def outbox(self, subject_id):
        """(event_type, body) of the outbox rows about subject_id (as subject or as body.source_id)."""
        return [(r["event_type"], r["body"]) for r in self.db.rows(
            "SELECT event_type, body FROM courier.outbox WHERE subject_id = %s OR body->>'source_id' = %s "
            "ORDER BY position", subject_id, subject_id)]

    def outbox_types(self, subject_id):
        return [t for t, _ in self.outbox(subject_id)]

    def connection_row(self, connection_id):
        return self.db.rows("SELECT * FROM courier.connections WHERE id = %s", connection_id)[0]

    def versions(self, credential_id):
        """(version, status) of each version of a credential."""
        return [tuple(r) for r in self.db.query(
            "SELECT version, status FROM courier.credential_versions WHERE credential_id = %s ORDER BY version",
            credential_id)]

    # --- waiting ---------------------------------------------------------------------------------

    def until(self, predicate, what, timeout=10, ids=()):
        """wait_for, failing with the state of the runs/connections involved and the daemon's log tail."""
        try:
            return wait_for(predicate, timeout=timeout, what=what)
        except pytest.fail.Exception:
            pytest.fail(f"timed out after {timeout}s waiting for {what}\n{self.describe(ids)}")

    def wait_run(self, run_id, *statuses, timeout=10):
        self.until(lambda: self.run(run_id)["status"] in statuses, f"run {run_id} to be {'/'.join(statuses)}",
                   timeout, [run_id])
        return self.run(run_id)

    def describe(self, ids):
        lines = []
        for i in ids:
            if i.startswith("run_"):
                r = self.run(i)
                lines.append(f"{i}: status={r['status']} attempts={r['attempts']} code={r['last_status_code']} "
                             f"error_code={r['last_error_code']} error={r['last_error']!r}")
                lines += [f"  attempt {a}" for a in self.attempts(i)]
            elif i.startswith("conn_"):
                c = self.connection_row(i)
                lines.append(f"{i}: status={c['status']} health={c['health']} reason={c['status_reason']!r} "
                             f"health_error={c['last_health_error']!r}")
            elif i.startswith("cred_"):
                lines.append(f"{i}: versions={self.versions(i)}")
        if self.daemon is not None:
            lines.append("daemon log (tail):")
            lines += self.daemon.log().splitlines()[-25:]
        return "\n".join(lines)

    def stays(self, predicate, what, seconds=1.0):
        """Asserts predicate holds throughout the next `seconds` (something that must not happen)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert predicate(), what
            time.sleep(0.05)

    # --- secrets ---------------------------------------------------------------------------------

    def assert_no_secret_leaks(self, *vendors):
        """No secret value given to pgcourier, no credential a vendor received, and no access token a vendor
        issued appears in the daemon log, any courier table, /metrics or pgcourierctl output."""
        values = set(self.secrets)
        values |= {basic_value(*s.split(":", 1)) for s in self.secrets if ":" in s}
        values |= {s.split(":", 1)[1] for s in self.secrets if ":" in s}
        for v in vendors:
            values |= set(v.issued_tokens)
            for r in v.requests():
                for name, value in r.headers.items():
                    if name == "authorization":
                        values.add(value.partition(" ")[2].strip())
                    elif name.endswith("key") and name != "idempotency-key":
                        values.add(value)
        values = {v for v in values if len(v) >= 12}
        assert values, "no secret to look for"
        for noun, object_id in [("run", r) for r in self.run_ids] + self.shown:
            self.ctl(noun, "show", object_id)
        for noun in ("run", "connection", "credential"):
            self.ctl(noun, "list")
        places = {"pgcourierctl output": "\n".join(self.outputs)}
        if self.daemon is not None:
            places["daemon log"] = self.daemon.log()
            places["/metrics"] = scrape(self.metrics_port)
        for table in SECRET_TABLES:
            places[f"courier.{table}"] = "\n".join(
                row[0] for row in self.db.query(f"SELECT t::text FROM courier.{table} t"))
        leaks = [(where, value[:8] + "...") for where, text in places.items() for value in values if value in text]
        assert not leaks, f"secrets found: {leaks}"


def flags(options):
    """{'api_key_header': 'X'} -> ['--api-key-header', 'X']"""
    out = []
    for key, value in options.items():
        if value is not None:
            out += ["--" + key.replace("_", "-"), str(value)]
    return out


@pytest.fixture
def courier(ctl, db, tmp_path, daemon_factory, write_policies):
    return Courier(ctl, db, tmp_path, daemon_factory, write_policies)


def metric(courier, name, **labels):
    """The value of one sample scraped from the daemon's /metrics (0 when absent)."""
    values = [v for n, l, v in parse_samples(scrape(courier.metrics_port)) if n == name and l == labels]
    assert len(values) <= 1, (name, labels, values)
    return values[0] if values else 0


def request_of(vendor, method, path, index=0):
    found = vendor.requests(method, path)
    assert len(found) > index, f"{method} {path}: {len(found)} requests"
    return found[index]


def oauth_vendor(make_vendor, client_secret):
    """A vendor whose API accepts only the tokens it issued to CLIENT_ID authenticated with client_secret."""
    vendor = make_vendor()
    vendor.oauth_client(CLIENT_ID, client_secret)
    vendor.require_oauth()
    return vendor


def idempotency_keys(requests):
    return [r.headers.get("idempotency-key") for r in requests]


# --- the vendor itself ---------------------------------------------------------------------------


def call(conn, method, path, body=None, headers=None):
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    return response.status, dict((k.lower(), v) for k, v in response.getheaders()), response.read()



def test_vendor_scripts_static_auth_and_keep_alive(make_vendor):
    v = make_vendor()
    v.script("POST", "/v1/x", (503, {"Retry-After": "1"}, None), (200, {}, {"id": "x1"}))
    conn = http.client.HTTPConnection("127.0.0.1", v.port, timeout=5)  # one connection throughout: keep-alive
    status, headers, _ = call(conn, "POST", "/v1/x?a=b", b'{"a":1}', {"Content-Type": "application/json"})
    assert (status, headers["retry-after"]) == (503, "1")
    assert [call(conn, "POST", "/v1/x")[0] for _ in range(2)] == [200, 200]   # the last answer repeats
    assert call(conn, "POST", "/v1/x")[2] == b'{"id": "x1"}'
    assert call(conn, "GET", "/v1/x")[0] == 404                              # scripts are per (method, path)
    first = v.requests("POST", "/v1/x")[0]
    assert (first.path, first.query, first.json(), first.headers["content-type"]) == \
        ("/v1/x", "a=b", {"a": 1}, "application/json")
    assert len(v.requests()) == 5 and len(v.requests(path="/v1/x")) == 5

    v.script("PUT", "/v1/y", (204, {}, None))
    v.require_api_key("X-Api-Key", "key-1")
    assert call(conn, "PUT", "/v1/y")[0] == 401
    assert call(conn, "PUT", "/v1/y", headers={"x-api-key": "key-2"})[0] == 401
    assert call(conn, "PUT", "/v1/y", headers={"X-API-KEY": "key-1"})[0] == 204
    assert [(r.status, r.auth_ok) for r in v.requests("PUT")] == [(401, False), (401, False), (204, True)]
    v.require_bearer("tok-1", "tok-2")
    assert [call(conn, "PUT", "/v1/y", headers={"Authorization": f"Bearer {t}"})[0]
            for t in ("tok-2", "tok-3")] == [204, 401]
    v.require_basic(("user", "pw:with:colons"))
    assert call(conn, "PUT", "/v1/y", headers={"Authorization": "Basic " + basic_value("user", "pw:with:colons")})[0] \
        == 204
    assert call(conn, "PUT", "/v1/y", headers={"Authorization": "Basic " + basic_value("user", "pw")})[0] == 401
    v.require_nothing()
    assert call(conn, "PUT", "/v1/y")[0] == 204
    conn.close()


def test_vendor_token_endpoint(make_vendor):
    v = make_vendor(token_expires_in=120)
    v.oauth_client(CLIENT_ID, "secret-1")
    v.require_oauth()
    v.script("GET", "/v1/me", (200, {}, {"me": 1}))
    conn = http.client.HTTPConnection("127.0.0.1", v.port, timeout=5)
    form = {"Content-Type": "application/x-www-form-urlencoded"}

    def token_call(secret, body="grant_type=client_credentials&scope=a+b"):
        return call(conn, "POST", "/oauth/token", body,
                    {**form, "Authorization": "Basic " + basic_value(CLIENT_ID, secret)})

    status, _, body = token_call("secret-1")
    answer = json.loads(body)
    assert status == 200 and answer["token_type"] == "Bearer" and answer["expires_in"] == 120, answer
    assert answer["scope"] == "a b" and v.issued_tokens == [answer["access_token"]]
    token = answer["access_token"]
    assert call(conn, "GET", "/v1/me", headers={"Authorization": f"Bearer {token}"})[0] == 200
    assert call(conn, "GET", "/v1/me")[0] == 401

    status, _, body = token_call("secret-2")
    assert (status, json.loads(body)) == (401, {"error": "invalid_client"})
    assert token_call("secret-1", "grant_type=password")[0] == 400
    assert call(conn, "POST", "/oauth/token", "grant_type=client_credentials", form)[0] == 401  # no client auth

    v.invalidate_tokens()   # a stale token is refused; a new one works
    assert call(conn, "GET", "/v1/me", headers={"Authorization": f"Bearer {token}"})[0] == 401
    fresh = json.loads(token_call("secret-1")[2])["access_token"]
    assert fresh != token and v.issued_tokens == [token, fresh]
    assert call(conn, "GET", "/v1/me", headers={"Authorization": f"Bearer {fresh}"})[0] == 200

    v.oauth_client(CLIENT_ID, "secret-1", "secret-2")
    v.reject_client_secret("secret-1")
    assert [token_call(s)[0] for s in ("secret-1", "secret-2")] == [401, 200]
    assert [r.form()["grant_type"] for r in v.token_requests()][-2:] == ["client_credentials"] * 2
    conn.close()


# --- outcomes ------------------------------------------------------------------------------------


def test_a_2xx_completes_the_run_and_extracts_its_external_ref(courier, make_vendor):
    vendor = make_vendor()
    key = new_secret("sk_live_")
    vendor.require_api_key("X-Vendor-Key", key)
    vendor.script("POST", "/v1/messages", (201, {}, {"sid": "SM0001", "status": "queued"}))
    vendor.script("PUT", "/v1/orders/42", (200, {}, {"data": {"id": 42, "state": "synced"}}))
    cred = courier.credential(key, name="vendor-key")
    conn = courier.connection(vendor.base_url, auth="api_key", credential=cred, api_key_header="X-Vendor-Key")
    courier.start()
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"

    sms = courier.enqueue(conn, operation="send_sms", path="/v1/messages", body='{"to": "+15550100", "text": "hi"}',
                          headers='{"X-Request-Source": "e2e"}', trace_id=trace, external_ref="/sid")
    sync = courier.enqueue_sql(conn, operation="sync_order", method="PUT", path="/v1/orders/42",
                               body='{"state": "paid"}', idempotency_key="order-42-sync", external_ref="/data/id")

    r = courier.wait_run(sms, "completed")
    assert (r["external_ref"], r["attempts"], r["last_status_code"]) == ("SM0001", 1, 201), r
    assert courier.attempts(sms) == [(1, 201, None)]
    r = courier.wait_run(sync, "completed")
    assert (r["external_ref"], r["attempts"]) == ("42", 1), r   # a JSON number, as text

    req = request_of(vendor, "POST", "/v1/messages")
    assert req.json() == {"to": "+15550100", "text": "hi"}
    assert req.headers["x-vendor-key"] == key
    assert req.headers["idempotency-key"] == sms        # no idempotency key given: the run id
    assert req.headers["content-type"] == "application/json"
    assert req.headers["x-request-source"] == "e2e"
    assert re.fullmatch(f"00-{trace}-[0-9a-f]{{16}}-0[01]", req.headers.get("traceparent", "")), req.headers
    put = request_of(vendor, "PUT", "/v1/orders/42")
    assert put.json() == {"state": "paid"} and put.headers["idempotency-key"] == "order-42-sync"
    assert len(vendor.requests()) == 2

    for run_id, ref in ((sms, "SM0001"), (sync, "42")):
        assert courier.failures(run_id) == []
        completed = [b for t, b in courier.outbox(run_id) if t == "IntegrationRunCompleted"]
        assert len(completed) == 1 and completed[0]["external_ref"] == ref, courier.outbox(run_id)
    assert metric(courier, "pgcourier_run_attempts_total", outcome="completed", error_class="") == 2
    assert metric(courier, "pgcourier_runs_finished_total", status="completed") == 2
    shown = courier.ctl("run", "show", sms).stdout
    assert sms in shown and "completed" in shown and "SM0001" in shown, shown
    courier.assert_no_secret_leaks(vendor)


def test_a_5xx_is_retried_with_the_same_idempotency_key_and_exhausted_retries_dead_letter(courier, make_vendor):
    vendor = make_vendor()
    token = new_secret("bt_")
    vendor.require_bearer(token)
    vendor.script("POST", "/v1/payments", (503, {}, {"error": "busy"}), (200, {}, {"id": "pay_1"}))
    vendor.script("POST", "/v1/ledger", (500, {}, {"error": "down"}))
    conn = courier.connection(vendor.base_url, auth="bearer", credential=courier.credential(token))
    courier.start(max_attempts=3, base="100ms")

    pay = courier.enqueue(conn, operation="pay", path="/v1/payments", body='{"amount": 100}', external_ref="/id")
    ledger = courier.enqueue(conn, operation="ledger", path="/v1/ledger", body="{}", idempotency_key="ledger-7")

    r = courier.wait_run(pay, "completed")
    assert (r["attempts"], r["external_ref"]) == (2, "pay_1"), r
    assert [(a["attempt"], a["status_code"], a["error_class"], a["retryable"]) for a in courier.attempt_rows(pay)] == \
        [(1, 503, "transient", True), (2, 200, None, False)]
    sent = vendor.requests("POST", "/v1/payments")
    assert idempotency_keys(sent) == [pay, pay]
    assert [r.headers["authorization"] for r in sent] == [f"Bearer {token}"] * 2
    failures = courier.failures(pay)
    assert [(f["source"], f["category"], f["next_action"], f["attempt"]) for f in failures] == \
        [("run", "transient", "retry", 1)], failures
    assert failures[0]["resolved_at"] is not None, "completing a run resolves its open failures"
    types = courier.outbox_types(pay)
    assert "IntegrationFailed" in types and "IntegrationRunCompleted" in types, types
    assert "IntegrationFailureEscalated" not in types and courier.escalations(pay) == []

    r = courier.wait_run(ledger, "dead_lettered")
    assert r["attempts"] == 3 and r["last_status_code"] == 500, r
    assert courier.attempts(ledger) == [(1, 500, "transient"), (2, 500, "transient"), (3, 500, "transient")]
    assert idempotency_keys(vendor.requests("POST", "/v1/ledger")) == ["ledger-7"] * 3
    failures = courier.failures(ledger)
    assert [f["next_action"] for f in failures] == ["retry", "retry", "dead_letter"], failures
    # Dead-lettering resolves the earlier failures; the one that dead-lettered the run stays open for the operator.
    assert [(f["attempt"], f["resolution"]) for f in failures] == [(1, "dead_lettered"), (2, "dead_lettered"),
                                                                    (3, None)], failures
    assert "IntegrationRunDeadLettered" in courier.outbox_types(ledger)
    dead = courier.db.rows("SELECT * FROM courier.run_dead_letters WHERE run_id = %s", ledger)
    assert len(dead) == 1 and dead[0]["body"] == "{}" and dead[0]["idempotency_key"] == "ledger-7", dead
    courier.assert_no_secret_leaks(vendor)


def test_rate_limited_answers_wait_for_retry_after_and_use_up_no_attempt(courier, make_vendor):
    vendor = make_vendor()
    password = new_secret("pw_")
    vendor.require_basic(("acct_42", password))
    vendor.script("POST", "/v1/slow", (429, {"Retry-After": "1"}, {"error": "slow down"}), (200, {}, {"ok": True}))
    vendor.script("POST", "/v1/busy", (503, {"Retry-After": "3600"}, None), (200, {}, {"ok": True}))
    conn = courier.connection(vendor.base_url, auth="basic", credential=courier.credential(f"acct_42:{password}"))
    # One attempt only: the runs can only complete if the rate-limited answers did not count.
    courier.start(max_attempts=1, base="100ms", cap="1500ms")

    slow = courier.enqueue(conn, operation="slow", path="/v1/slow", body="{}")
    busy = courier.enqueue(conn, operation="busy", path="/v1/busy", body="{}")
    for run_id, status in ((slow, 429), (busy, 503)):
        r = courier.wait_run(run_id, "completed", "failed", "dead_lettered")
        assert r["status"] == "completed" and r["attempts"] == 2, r
        assert courier.attempts(run_id) == [(1, status, "rate_limited"), (2, 200, None)]
        failures = courier.failures(run_id)
        assert [(f["category"], f["next_action"]) for f in failures] == [("rate_limited", "retry")], failures

    first, second = vendor.requests("POST", "/v1/slow")
    assert second.at - first.at >= 0.95, f"Retry-After: 1 honoured? retried after {second.at - first.at:.2f}s"
    first, second = vendor.requests("POST", "/v1/busy")
    gap = second.at - first.at
    assert 1.0 <= gap < 8, f"Retry-After: 3600 capped by backoff.cap 1500ms: retried after {gap:.2f}s"
    for path, run_id in (("/v1/slow", slow), ("/v1/busy", busy)):
        sent = vendor.requests("POST", path)
        assert idempotency_keys(sent) == [run_id, run_id]
        assert {r.headers["authorization"] for r in sent} == {"Basic " + basic_value("acct_42", password)}
    courier.assert_no_secret_leaks(vendor)


def test_oauth2_a_401_drops_the_token_and_the_run_succeeds_with_a_fresh_one(courier, make_vendor):
    client_secret = new_secret("cs_")
    vendor = oauth_vendor(make_vendor, client_secret)
    vendor.script("POST", "/v1/charges", (200, {}, {"id": "ch_1"}))
    conn = courier.oauth_connection(vendor, courier.credential(client_secret), scopes="charges:write charges:read")
    courier.start()

    first = courier.enqueue(conn, operation="charge", path="/v1/charges", body='{"amount": 1}', external_ref="/id")
    assert courier.wait_run(first, "completed")["external_ref"] == "ch_1"
    (token_request,) = vendor.token_requests()
    assert token_request.headers["content-type"].startswith("application/x-www-form-urlencoded")
    assert token_request.form() == {"grant_type": "client_credentials", "scope": "charges:write charges:read"}
    assert token_request.headers["authorization"] == "Basic " + basic_value(CLIENT_ID, client_secret)
    assert request_of(vendor, "POST", "/v1/charges").bearer == vendor.issued_tokens[0]

    vendor.invalidate_tokens()   # the cached token is now stale
    second = courier.enqueue(conn, operation="charge", path="/v1/charges", body='{"amount": 2}')
    r = courier.wait_run(second, "completed")
    assert r["attempts"] == 2, r
    rows = courier.attempt_rows(second)
    assert [(a["status_code"], a["error_code"]) for a in rows][0] == (401, "auth_refresh"), rows
    assert rows[1]["status_code"] == 200, rows
    stale, fresh = vendor.requests("POST", "/v1/charges")[1:]
    assert (stale.status, stale.bearer) == (401, vendor.issued_tokens[0])
    assert (fresh.status, fresh.bearer) == (200, vendor.issued_tokens[1])
    assert idempotency_keys([stale, fresh]) == [second, second]
    assert fresh.at - stale.at < 3, "the refreshed attempt follows promptly"
    failures = courier.failures(second)
    assert [(f["error_code"], f["next_action"]) for f in failures] == [("auth_refresh", "retry")], failures
    assert failures[0]["resolved_at"] is not None and courier.escalations(second) == []
    assert courier.connection_row(conn)["status"] == "active"
    assert "IntegrationConnectionDegraded" not in courier.outbox_types(conn)

    third = courier.enqueue(conn, operation="charge", path="/v1/charges", body='{"amount": 3}')
    courier.wait_run(third, "completed")
    assert request_of(vendor, "POST", "/v1/charges", 3).bearer == vendor.issued_tokens[1]
    assert len(vendor.token_requests()) == 2, "the fresh token is cached"
    courier.assert_no_secret_leaks(vendor)


def test_oauth2_a_health_check_refused_with_a_stale_token_fetches_a_fresh_one(courier, make_vendor):
    # The token cache belongs to the connection: a probe answered 401 must drop the stale token too,
    # otherwise every later probe fails the same way and the connection's runs wait forever.
    client_secret = new_secret("cs_")
    vendor = oauth_vendor(make_vendor, client_secret)
    vendor.script("GET", "/health", (200, {}, {"ok": True}))
    vendor.script("POST", "/v1/charges", (200, {}, {"id": "ch_1"}))
    conn = courier.oauth_connection(vendor, courier.credential(client_secret), health_check="GET /health")
    courier.start(integration={"unhealthy_after": 1})
    courier.until(lambda: courier.connection_row(conn)["health"] == "healthy", "the first passing probe", ids=[conn])

    vendor.invalidate_tokens()
    courier.until(lambda: any(r.status == 401 for r in vendor.requests("GET", "/health")),
                  "a probe with the stale token", ids=[conn])
    courier.until(lambda: len(vendor.token_requests()) == 2, "a fresh token after the refused probe", ids=[conn])
    courier.until(lambda: courier.connection_row(conn)["health"] == "healthy", "a passing probe with the fresh token",
                  ids=[conn])
    run_id = courier.enqueue(conn, operation="charge", path="/v1/charges", body="{}")
    courier.wait_run(run_id, "completed")
    assert request_of(vendor, "POST", "/v1/charges").bearer == vendor.issued_tokens[1]
    courier.assert_no_secret_leaks(vendor)


def test_oauth2_a_second_401_with_a_fresh_token_degrades_the_connection(courier, make_vendor):
    client_secret = new_secret("cs_")
    vendor = oauth_vendor(make_vendor, client_secret)
    vendor.script("POST", "/v1/refunds", (401, {}, {"error": "this client may not refund"}))
    conn = courier.oauth_connection(vendor, courier.credential(client_secret))
    courier.start()

    run_id = courier.enqueue(conn, operation="refund", path="/v1/refunds", body="{}")
    courier.until(lambda: courier.connection_row(conn)["status"] == "degraded", "the connection to be degraded",
                  ids=[run_id, conn])
    # The degrade commits before the run's outcome (lanes/runs/writes.cpp): wait for the second attempt too.
    courier.until(lambda: len(courier.attempt_rows(run_id)) == 2, "the refused attempt on record", ids=[run_id, conn])
    assert len(vendor.token_requests()) == 2, "one token, then one refresh"
    rows = courier.attempt_rows(run_id)
    assert [(a["status_code"], a["error_code"]) for a in rows][:1] == [(401, "auth_refresh")], rows
    assert [(a["status_code"], a["error_class"]) for a in rows][1:] == [(401, "auth")], rows
    r = courier.run(run_id)
    assert r["status"] == "pending" and r["attempts"] == 2, r
    assert len(courier.escalations(run_id)) == 1
    assert "IntegrationConnectionDegraded" in courier.outbox_types(conn)
    courier.stays(lambda: courier.run(run_id)["attempts"] == 2 and len(vendor.requests("POST", "/v1/refunds")) == 2,
                  "a degraded connection's runs wait without burning attempts")
    courier.assert_no_secret_leaks(vendor)


def test_a_refused_static_key_degrades_the_connection_and_holds_its_runs_until_rotation(courier, make_vendor):
    vendor = make_vendor()
    old_key, new_key = new_secret("ak_old_"), new_secret("ak_new_")
    vendor.require_api_key("X-Api-Key", new_key)   # the vendor revoked old_key
    vendor.script("POST", "/v1/messages", (200, {}, {"sid": "SM9"}))
    cred = courier.credential(old_key)
    conn = courier.connection(vendor.base_url, auth="api_key", credential=cred)   # default header X-Api-Key
    courier.start()

    first = courier.enqueue(conn, operation="send", path="/v1/messages", body="{}")
    courier.until(lambda: courier.run(first)["attempts"] == 1 and courier.connection_row(conn)["status"] == "degraded",
                  "the refused run to degrade its connection", ids=[first, conn])
    r = courier.run(first)
    assert (r["status"], r["last_status_code"]) == ("pending", 401), r
    assert courier.attempts(first) == [(1, 401, "auth")]
    failures = courier.failures(first)
    assert [(f["category"], f["next_action"]) for f in failures] == [("auth", "escalate")], failures
    assert len(courier.escalations(first)) == 1
    assert "IntegrationFailureEscalated" in courier.outbox_types(first)
    assert "IntegrationConnectionDegraded" in courier.outbox_types(conn)

    second = courier.enqueue(conn, operation="send", path="/v1/messages", body="{}")
    courier.stays(lambda: courier.run(second)["attempts"] == 0 and courier.run(first)["attempts"] == 1,
                  "runs of a degraded connection wait")
    assert len(vendor.requests()) == 1
    waiting = courier.db.value("SELECT waiting_for FROM courier.run_status WHERE id = %s", second)
    assert waiting and "degraded" in waiting, waiting

    assert courier.rotate(cred, new_key) == 2
    for run_id in (first, second):
        courier.wait_run(run_id, "completed")
    assert courier.versions(cred) == [(1, "inactive"), (2, "active")]
    rotated = [b for t, b in courier.outbox(cred) if t == "CredentialRotated"]
    assert len(rotated) == 1 and (rotated[0]["version"], rotated[0]["previous_version"]) == (2, 1), rotated
    assert courier.connection_row(conn)["status"] == "active"
    assert (courier.run(first)["attempts"], courier.run(second)["attempts"]) == (2, 1)
    sent = [r for r in vendor.requests("POST", "/v1/messages") if r.headers["idempotency-key"] == first]
    assert [(r.status, r.headers["x-api-key"]) for r in sent] == [(401, old_key), (200, new_key)]
    assert all(f["resolved_at"] is not None for f in courier.failures(first))
    courier.assert_no_secret_leaks(vendor)


def test_validation_errors_fail_without_retry_and_escalate(courier, make_vendor):
    vendor = make_vendor()
    for status in (400, 404, 409):
        vendor.script("POST", f"/v1/s{status}", (status, {}, {"error": "no"}))
    vendor.script("POST", "/v1/s422", (422, {}, {"error": "invalid phone"}), (201, {}, {"id": "fixed"}))
    token = new_secret("bt_")
    vendor.require_bearer(token)
    conn = courier.connection(vendor.base_url, auth="bearer", credential=courier.credential(token))
    courier.start(max_attempts=3)

    runs = {status: courier.enqueue(conn, operation="send", path=f"/v1/s{status}", body="{}")
            for status in (400, 404, 409, 422)}
    for status, run_id in runs.items():
        r = courier.wait_run(run_id, "failed", "completed", "dead_lettered")
        assert (r["status"], r["attempts"], r["last_status_code"]) == ("failed", 1, status), r
        assert courier.attempts(run_id) == [(1, status, "validation")]
        failures = courier.failures(run_id)
        assert [(f["category"], f["next_action"]) for f in failures] == [("validation", "escalate")], failures
        assert len(courier.escalations(run_id)) == 1
        types = courier.outbox_types(run_id)
        assert "IntegrationRunFailed" in types and "IntegrationFailureEscalated" in types, types
    courier.stays(lambda: len(vendor.requests()) == 4, "no validation error is retried")
    # The same story in /metrics: four validation attempts, four failed runs, escalations open.
    courier.until(lambda: metric(courier, "pgcourier_escalations_open") == 4, "the leader's run metrics", ids=list(runs.values()))
    assert metric(courier, "pgcourier_run_attempts_total", outcome="http_error", error_class="validation") == 4
    assert metric(courier, "pgcourier_runs_finished_total", status="failed") == 4
    assert metric(courier, "pgcourier_run_queue_depth", state="due") == 0

    # An operator fixes the cause and replays; a completed run is never replayed.
    courier.ctl("run", "replay", runs[422])
    r = courier.wait_run(runs[422], "completed")
    assert r["attempts"] == 2 and r["last_status_code"] == 201, r
    assert idempotency_keys(vendor.requests("POST", "/v1/s422")) == [runs[422]] * 2
    assert courier.ctl("run", "replay", runs[422], check=False).returncode == 1
    courier.assert_no_secret_leaks(vendor)


def test_poison_runs_are_dead_lettered_at_once_with_their_envelope_and_escalated(courier, make_vendor):
    vendor = make_vendor()
    vendor.script("POST", "/v1/things", (201, {}, {"id": "t1"}))
    vendor.script("POST", "/v1/notes", (201, {}, {"id": "n1"}))
    key = new_secret("ak_")
    vendor.require_api_key("X-Api-Key", key)
    cred = courier.credential(key)
    conn = courier.connection(vendor.base_url, auth="api_key", credential=cred)
    retired = courier.connection(vendor.base_url, auth="api_key", credential=cred)
    courier.ctl("connection", "retire", retired)
    foreign = courier.connection(vendor.base_url, tenant="globex", auth="api_key",
                                 credential=courier.credential(key, tenant="globex"))
    # Another tenant's connection, or one that does not exist, is refused at enqueue (issue 13): same error.
    import psycopg2
    for other in (foreign, "conn_doesnotexist"):
        try:
            courier.enqueue_sql(other, path="/v1/things", body='{"a": 3}')
            raise AssertionError(f"a run on {other} was accepted")
        except psycopg2.Error as e:
            assert f"{other} is not a connection of tenant {TENANT}" in str(e)
    # A connection deleted after the run was enqueued is only found out at claim: poison.
    deleted = courier.connection(vendor.base_url, auth="api_key", credential=cred)
    headers = {"X-Origin": "orders"}
    unknown = courier.enqueue_sql(deleted, path="/v1/things", body='{"a": 1}', headers=headers)
    courier.db.query("DELETE FROM courier.connections WHERE id = %s", deleted)
    courier.shown.remove(("connection", deleted))
    courier.start()

    poison = {
        "unknown connection": unknown,
        "retired connection": courier.enqueue_sql(retired, path="/v1/things", body='{"a": 2}', headers=headers),
        "invalid JSON body": courier.enqueue_sql(conn, path="/v1/things", body='{"a": 4', headers=headers),
        "unsupported method": courier.enqueue_sql(conn, method="TRACE", path="/v1/things", body='{"a": 5}',
                                                  headers=headers),
        "relative path": courier.enqueue_sql(conn, path="v1/things", body='{"a": 6}', headers=headers),
    }
    text = courier.enqueue_sql(conn, path="/v1/notes", body="plain words", headers={"Content-Type": "text/plain"})
    good = courier.enqueue_sql(conn, path="/v1/things", body='{"a": 7}')

    for what, run_id in poison.items():
        r = courier.wait_run(run_id, "dead_lettered", "completed", "failed")
        assert r["status"] == "dead_lettered", (what, r)
        dead = courier.db.rows("SELECT * FROM courier.run_dead_letters WHERE run_id = %s", run_id)
        assert len(dead) == 1 and dead[0]["headers"] == headers, (what, dead)
        assert dead[0]["body"].startswith('{"a": ') and dead[0]["path"].endswith("v1/things"), (what, dead)
        failures = courier.failures(run_id)
        assert [(f["source"], f["category"]) for f in failures] == [("run", "poison")], (what, failures)
        assert len(courier.escalations(run_id)) == 1, what
        types = courier.outbox_types(run_id)
        assert "IntegrationRunDeadLettered" in types and "IntegrationFailureEscalated" in types, (what, types)
    assert courier.run(poison["invalid JSON body"])["body"] == '{"a": 4'
    for run_id in (text, good):
        courier.wait_run(run_id, "completed")
    note = request_of(vendor, "POST", "/v1/notes")
    assert (note.text, note.headers["content-type"]) == ("plain words", "text/plain")
    assert [r.json() for r in vendor.requests("POST", "/v1/things")] == [{"a": 7}], "poison never reaches the vendor"
    assert len(vendor.requests()) == 2
    courier.assert_no_secret_leaks(vendor)


def test_runs_of_a_pending_connection_wait_until_it_is_activated(courier, make_vendor):
    vendor = make_vendor()
    vendor.script("POST", "/v1/things", (200, {}, {"id": "t1"}))
    conn = courier.connection(vendor.base_url, status="pending")
    courier.start()

    run_id = courier.enqueue(conn, operation="send", path="/v1/things", body="{}")
    courier.stays(lambda: courier.run(run_id)["attempts"] == 0 and courier.run(run_id)["status"] == "pending",
                  "runs of a pending connection wait")
    assert vendor.requests() == []
    courier.ctl("connection", "activate", conn)
    assert courier.wait_run(run_id, "completed")["attempts"] == 1


# --- credential rotation -------------------------------------------------------------------------


def test_a_rotation_is_verified_with_the_health_check_and_promoted(courier, make_vendor):
    vendor = make_vendor()
    old_token, new_token = new_secret("bt_old_"), new_secret("bt_new_")
    vendor.require_bearer(old_token)
    vendor.script("GET", "/health", (200, {}, {"ok": True}))
    vendor.script("POST", "/v1/messages", (200, {}, {"sid": "SM1"}))
    cred = courier.credential(old_token)
    conn = courier.connection(vendor.base_url, auth="bearer", credential=cred, health_check="GET /health",
                              expect_status=200)
    courier.start()
    courier.until(lambda: courier.connection_row(conn)["health"] == "healthy", "the first passing probe", ids=[conn])

    before = courier.enqueue(conn, operation="send", path="/v1/messages", body="{}")
    courier.wait_run(before, "completed")
    vendor.require_bearer(old_token, new_token)   # the vendor knows both during the rotation
    assert courier.rotate(cred, new_token) == 2
    assert courier.versions(cred)[1][1] in ("rotating", "active")
    courier.until(lambda: courier.versions(cred) == [(1, "inactive"), (2, "active")], "the new version to be promoted",
                  ids=[cred, conn])
    rotated = [b for t, b in courier.outbox(cred) if t == "CredentialRotated"]
    assert len(rotated) == 1 and rotated[0]["verified_with"] == conn, rotated
    assert any(r.bearer == new_token for r in vendor.requests("GET", "/health")), "verified with a health check"

    after = courier.enqueue(conn, operation="send", path="/v1/messages", body="{}")
    courier.wait_run(after, "completed")
    assert [r.bearer for r in vendor.requests("POST", "/v1/messages")] == [old_token, new_token]
    courier.assert_no_secret_leaks(vendor)


def test_a_rotation_whose_verification_fails_keeps_the_prior_version(courier, make_vendor):
    good_secret, bad_secret = new_secret("cs_good_"), new_secret("cs_bad_")
    vendor = oauth_vendor(make_vendor, good_secret)
    vendor.reject_client_secret(bad_secret)
    vendor.script("GET", "/health", (200, {}, {"ok": True}))
    vendor.script("POST", "/v1/charges", (200, {}, {"id": "ch_9"}))
    cred = courier.credential(good_secret)
    conn = courier.oauth_connection(vendor, cred, health_check="GET /health")
    courier.start()
    courier.until(lambda: courier.connection_row(conn)["health"] == "healthy", "the first passing probe", ids=[conn])

    assert courier.rotate(cred, bad_secret) == 2
    courier.until(lambda: courier.versions(cred) == [(1, "active"), (2, "failed")], "the rotation to fail",
                  ids=[cred, conn])
    error = courier.db.value("SELECT verification_error FROM courier.credential_versions "
                             "WHERE credential_id = %s AND version = 2", cred)
    assert error, "a failed verification says why"
    with_bad_secret = "Basic " + basic_value(CLIENT_ID, bad_secret)
    refused = [r for r in vendor.token_requests() if r.headers["authorization"] == with_bad_secret]
    assert refused and all(r.status == 401 for r in refused), "verified by fetching a token with the new secret"
    failures = courier.db.rows("SELECT * FROM courier.failures WHERE error_code = 'rotation_verification_failed'")
    assert len(failures) == 1 and failures[0]["category"] == "auth", failures
    assert courier.db.value("SELECT count(*) FROM courier.escalations WHERE failure_id = %s", failures[0]["id"]) == 1
    assert "CredentialRotated" not in courier.outbox_types(cred)

    run_id = courier.enqueue(conn, operation="charge", path="/v1/charges", body="{}")
    courier.wait_run(run_id, "completed")
    assert request_of(vendor, "POST", "/v1/charges").bearer in vendor.issued_tokens   # issued for the prior secret
    assert courier.connection_row(conn)["status"] == "active"
    courier.assert_no_secret_leaks(vendor)


# --- health --------------------------------------------------------------------------------------


def test_a_failing_health_probe_opens_the_circuit_and_a_passing_one_closes_it(courier, make_vendor):
    vendor = make_vendor()
    vendor.script("GET", "/health", (204, {}, None))
    vendor.script("POST", "/v1/things", (200, {}, {"id": "t1"}))
    conn = courier.connection(vendor.base_url, health_check="GET /health", expect_status=204)
    courier.start(integration={"unhealthy_after": 2})
    courier.until(lambda: courier.connection_row(conn)["health"] == "healthy", "the first passing probe", ids=[conn])

    vendor.script("GET", "/health", (503, {}, {"error": "maintenance"}))
    courier.until(lambda: courier.connection_row(conn)["health"] == "unhealthy", "the circuit to open", ids=[conn])
    assert courier.connection_row(conn)["consecutive_probe_failures"] >= 2
    degraded = [b for t, b in courier.outbox(conn) if t == "IntegrationConnectionDegraded"]
    assert any(b["health"] == "unhealthy" for b in degraded), degraded
    probe_failures = courier.db.rows("SELECT * FROM courier.open_failures WHERE source = 'probe' AND source_id = %s",
                                     conn)
    assert len(probe_failures) >= 2 and {f["next_action"] for f in probe_failures} == {"retry"}, probe_failures

    run_id = courier.enqueue(conn, operation="send", path="/v1/things", body="{}")
    courier.stays(lambda: courier.run(run_id)["attempts"] == 0 and not vendor.requests("POST"),
                  "runs wait while the connection is unhealthy")
    waiting = courier.db.value("SELECT waiting_for FROM courier.run_status WHERE id = %s", run_id)
    assert waiting and "unhealthy" in waiting, waiting

    healed_at = time.monotonic()
    vendor.script("GET", "/health", (204, {}, None))
    r = courier.wait_run(run_id, "completed")
    assert r["attempts"] == 1, r
    assert courier.connection_row(conn)["health"] == "healthy"
    assert "IntegrationConnectionRecovered" in courier.outbox_types(conn)
    assert courier.db.value("SELECT count(*) FROM courier.open_failures WHERE source = 'probe'") == 0
    recovered_at = min(r.at for r in vendor.requests("GET", "/health") if r.at > healed_at)
    assert request_of(vendor, "POST", "/v1/things").at > recovered_at, "the run waited for a passing probe"


# --- secrets -------------------------------------------------------------------------------------


def test_no_secret_reaches_the_log_the_tables_metrics_or_cli_output(courier, make_vendor):
    """Every auth mode in one daemon, through success and failure paths (refused key and rotation, token
    refresh, retries, validation error, health probes)."""
    old_key, new_key, token, password, client_secret = (
        new_secret("ak_old_"), new_secret("ak_new_"), new_secret("bt_"), new_secret("pw_"), new_secret("cs_"))
    keyed, bearer, basic = (make_vendor() for _ in range(3))
    oauth = oauth_vendor(make_vendor, client_secret)
    keyed.require_api_key("X-Api-Key", new_key)
    bearer.require_bearer(token)
    basic.require_basic(("acct", password))
    for v in (keyed, bearer, basic, oauth):
        v.script("POST", "/v1/do", (503, {}, {"error": "busy"}), (200, {}, {"ref": "r1"}))
        v.script("POST", "/v1/bad", (422, {}, {"error": "bad"}))
        v.script("GET", "/health", (200, {}, {"ok": True}))
    key_cred = courier.credential(old_key, name="keyed")
    conns = [courier.connection(keyed.base_url, auth="api_key", credential=key_cred),
             courier.connection(bearer.base_url, auth="bearer", credential=courier.credential(token),
                                health_check="GET /health"),
             courier.connection(basic.base_url, auth="basic", credential=courier.credential(f"acct:{password}"),
                                health_check="GET /health"),
             # No health check here: a probe meeting the stale token is the subject of its own test.
             courier.oauth_connection(oauth, courier.credential(client_secret), scopes="do")]
    courier.start()

    runs = [courier.enqueue(c, operation=op, path=f"/v1/{op}", body="{}", external_ref="/ref")
            for c in conns for op in ("do", "bad")]
    courier.until(lambda: courier.connection_row(conns[0])["status"] == "degraded", "the refused key",
                  ids=[conns[0]])
    oauth.invalidate_tokens()
    courier.rotate(key_cred, new_key)
    for run_id in runs:
        courier.wait_run(run_id, "completed", "failed")
    late = courier.enqueue(conns[3], operation="do", path="/v1/do", body="{}")   # with a refreshed token
    courier.wait_run(late, "completed")
    assert len(oauth.issued_tokens) >= 1 and any(r.status == 401 for r in keyed.requests())
    courier.assert_no_secret_leaks(keyed, bearer, basic, oauth)
