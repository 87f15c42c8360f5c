"""pgcourierctl --json: one stable, documented shape per read command (README: JSON output), checked by
parsing with json.loads: every key present, of its type (null where there is no value), timestamps in RFC 3339,
URLs redacted as in the text output, and no secret anywhere."""
import json
import re

from test_ctl_integration import claim, create_connection, create_credential, enqueue, record

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d$")
STR, INT, NUM, BOOL, LIST, DICT = str, int, (int, float), bool, list, dict
TIME = "time"
OPT = "nullable"


def shape(value, expected, where="$"):
    """Checks value against expected: a type, TIME, (OPT, type), a dict of key -> expected (exactly those keys)
    or [expected] (a list of them)."""
    if isinstance(expected, tuple) and expected and expected[0] == OPT:
        if value is None:
            return
        expected = expected[1]
    if expected == TIME:
        assert isinstance(value, str) and (RFC3339.match(value) or value == "infinity"), f"{where}: {value!r}"
    elif isinstance(expected, dict):
        assert isinstance(value, dict), f"{where}: {value!r}"
        assert set(value) == set(expected), f"{where}: keys {sorted(set(value) ^ set(expected))} differ"
        for key, sub in expected.items():
            shape(value[key], sub, f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(value, list), f"{where}: {value!r}"
        for i, item in enumerate(value):
            shape(item, expected[0], f"{where}[{i}]")
    else:
        assert isinstance(value, expected) and not (expected is INT and isinstance(value, bool)), \
            f"{where}: {value!r} is not {expected}"


STATE = {"state": STR, "since": (OPT, TIME), "reason": (OPT, STR), "consecutive_failures": INT,
         "failing_since": (OPT, TIME), "last_success_at": (OPT, TIME), "last_failure_at": (OPT, TIME),
         "last_error": (OPT, STR), "held_deliveries": INT}
SECRET = {"id": STR, "last4": STR, "created_at": TIME, "expires_at": (OPT, TIME), "scheme": STR,
          "public_key": (OPT, STR)}
SUBSCRIPTION = {"id": STR, "tenant_id": STR, "url": STR, "event_types": [STR], "policy": STR,
                "description": (OPT, STR), "ordering": STR, "ordering_key_field": (OPT, STR),
                "max_in_flight": (OPT, INT), "rate_limit_per_second": (OPT, NUM), "rate_limit_burst": (OPT, INT),
                "filter": (OPT, STR), "scope": (OPT, dict),
                "created_at": TIME, "updated_at": TIME, "state": STATE, "secrets": [SECRET]}
ATTEMPT = {"attempt": INT, "started_at": TIME, "duration_ms": NUM, "status_code": (OPT, INT), "outcome": STR,
           "error_class": (OPT, STR), "retryable": BOOL, "error_summary": (OPT, STR), "worker": (OPT, STR)}
RUN_ATTEMPT = {**ATTEMPT, "error_code": (OPT, STR), "credential_version": (OPT, INT)}
DELIVERY = {"id": STR, "tenant_id": STR, "status": STR, "attempts": INT, "subscription_id": STR, "url": STR,
            "event_id": STR, "event_type": STR, "next_attempt_at": (OPT, TIME), "held": BOOL,
            "lease_owner": (OPT, STR), "lease_expires_at": (OPT, TIME), "last_status_code": (OPT, INT),
            "last_error": (OPT, STR), "created_at": TIME, "updated_at": TIME, "completed_at": (OPT, TIME),
            "timeline": [ATTEMPT]}
CONNECTION_HEALTH = {"id": STR, "tenant_id": STR, "provider": STR, "base_url": STR, "auth_mode": STR, "status": STR,
                     "status_reason": (OPT, STR), "health": STR, "consecutive_probe_failures": INT,
                     "last_checked_at": (OPT, TIME), "last_health_error": (OPT, STR), "credential_id": (OPT, STR),
                     "credential_version": (OPT, INT), "credential_expires_at": (OPT, TIME), "runs_waiting": INT,
                     "open_failures": INT}
CONNECTION = {**CONNECTION_HEALTH, "provider_id": (OPT, STR), "api_key_header": (OPT, STR), "token_url": (OPT, STR), "client_id": (OPT, STR),
              "scopes": (OPT, STR), "health_check": (OPT, STR), "expected_status": (OPT, INT), "policy": STR,
              "max_in_flight": (OPT, INT), "rate_limit_per_second": (OPT, NUM), "rate_limit_burst": (OPT, INT),
              "created_at": TIME, "updated_at": TIME}
CREDENTIAL = {"id": STR, "tenant_id": STR, "name": (OPT, STR), "status": STR, "active_version": (OPT, INT),
              "fingerprint": (OPT, STR), "expires_at": (OPT, TIME), "expires_in": (OPT, STR), "created_at": TIME,
              "updated_at": TIME}
VERSION = {"version": INT, "status": STR, "fingerprint": STR, "created_at": TIME, "activated_at": (OPT, TIME),
           "retired_at": (OPT, TIME), "expires_at": (OPT, TIME), "verification_error": (OPT, STR)}
ROTATION_POLICY = {"rotate_every": STR, "rotation_command": (OPT, STR), "next_due_at": TIME, "due_reason": STR,
                   "state": STR, "last_rotated_at": (OPT, TIME), "last_result": (OPT, STR), "last_error": (OPT, STR)}
ROTATION_EVENT = {"at": TIME, "event_type": STR, "body_json": STR}
RUN = {"id": STR, "tenant_id": STR, "connection_id": STR, "provider": (OPT, STR), "operation": STR, "method": STR,
       "path": STR, "status": STR, "attempts": INT, "next_attempt_at": (OPT, TIME), "lease_owner": (OPT, STR),
       "lease_expires_at": (OPT, TIME), "external_ref": (OPT, STR), "external_ref_pointer": (OPT, STR),
       "last_status_code": (OPT, INT), "last_error": (OPT, STR), "last_error_code": (OPT, STR),
       "waiting_for": (OPT, STR), "idempotency_key": (OPT, STR), "trace_id": (OPT, STR), "created_at": TIME,
       "started_at": (OPT, TIME), "completed_at": (OPT, TIME), "latency_ms": (OPT, NUM)}
FAILURE = {"id": STR, "created_at": TIME, "attempt": (OPT, INT), "category": STR, "error_code": (OPT, STR),
           "message": (OPT, STR), "next_action": STR, "escalations": INT, "resolved_at": (OPT, TIME),
           "resolution": (OPT, STR)}
STATUS = {"deliveries": [{"status": STR, "deliveries": INT, "due_now": INT, "oldest_due_at": (OPT, TIME)}],
          "subscriptions_needing_attention": [{"subscription_id": STR, "tenant_id": STR, "url": STR, "state": STATE}],
          "runs": {k: INT for k in ("due", "scheduled", "waiting", "running", "dead_lettered", "unhealthy_connections",
                                    "degraded_connections", "credentials_expiring_within_7_days", "open_escalations")},
          "connections_needing_attention": [CONNECTION_HEALTH],
          "recent": [{"id": STR, "event_type": STR, "subscription_id": STR, "status": STR, "attempts": INT,
                      "last_status_code": (OPT, INT), "last_error": (OPT, STR), "updated_at": TIME}]}


def as_json(ctl, *args):
    result = ctl(*args, "--json")
    return json.loads(result.stdout)


def test_subscription_list_show_update_and_create_print_their_documented_shapes(db, ctl, receiver):
    created = as_json(ctl, "subscription", "create", "--tenant", "acme", "--url",
                      receiver.url("/in?token=querysecret"), "--events", "order.*,invoice.paid")
    shape(created, {"id": STR, "url": STR, "secret": STR})
    assert created["secret"].startswith("whsec_") and created["url"].endswith("/in?***"), created
    sub = created["id"]
    db.publish("acme", "order.paid", "{}")
    ctl("subscription", "pause", sub, "--reason", "maintenance")

    listed = as_json(ctl, "subscription", "list")
    shape(listed, {"subscriptions": [SUBSCRIPTION]})
    [s] = listed["subscriptions"]
    assert (s["id"], s["event_types"], s["state"]["state"], s["state"]["reason"], s["state"]["held_deliveries"]) == \
        (sub, ["order.*", "invoice.paid"], "paused", "maintenance", 1), s
    assert "querysecret" not in json.dumps(listed) and created["secret"] not in json.dumps(listed)
    assert as_json(ctl, "subscription", "list", "--tenant", "globex") == {"subscriptions": []}

    shown = as_json(ctl, "subscription", "show", sub)
    shape(shown, {**SUBSCRIPTION, "deliveries_by_status": DICT})
    assert shown["deliveries_by_status"] == {"pending": 1} and len(shown["secrets"]) == 1, shown

    updated = as_json(ctl, "subscription", "update", sub, "--max-in-flight", "3", "--rate-limit", "2.5",
                      "--description", "orders")
    shape(updated, SUBSCRIPTION)
    assert (updated["max_in_flight"], updated["rate_limit_per_second"], updated["description"]) == (3, 2.5, "orders")

    rotated = as_json(ctl, "subscription", "rotate-secret", sub, "--grace", "1h")
    shape(rotated, {"subscription_id": STR, "secret": STR, "created": SECRET, "expiring": [SECRET], "kept": [SECRET]})
    assert len(rotated["expiring"]) == 1 and rotated["kept"] == []


def test_inspect_and_status_print_their_documented_shapes(db, ctl, receiver, create_subscription, daemon_factory):
    sub, _ = create_subscription(receiver.url("/flaky/1"))
    paused, _ = create_subscription(receiver.url("/ok"))
    ctl("subscription", "pause", paused)
    daemon_factory("d1", poll_interval="100ms")
    event = db.publish("acme", "order.created", "{}")
    from conftest import wait_for
    wait_for(lambda: db.delivery(event, sub)["status"] == "delivered", timeout=10, what="the delivery")
    dlv = db.delivery(event, sub)["id"]

    inspected = as_json(ctl, "inspect", dlv)
    shape(inspected, DELIVERY)
    assert (inspected["status"], inspected["attempts"], inspected["next_attempt_at"]) == ("delivered", 2, None)
    assert [(a["attempt"], a["status_code"], a["outcome"]) for a in inspected["timeline"]] == \
        [(1, 500, "http_error"), (2, 200, "delivered")]
    held = as_json(ctl, "inspect", db.delivery(event, paused)["id"])
    assert (held["held"], held["next_attempt_at"]) == (True, "infinity"), held

    status = as_json(ctl, "status", "--recent", "5")
    shape(status, STATUS)
    assert {r["status"] for r in status["deliveries"]} >= {"delivered", "pending"}, status
    assert [s["subscription_id"] for s in status["subscriptions_needing_attention"]] == [paused]
    assert len(status["recent"]) == 2
    assert as_json(ctl, "status")["recent"] == []


def test_connection_credential_and_run_commands_print_their_documented_shapes(db, ctl, tmp_path):
    cred = create_credential(ctl, tmp_path, "tok-json", "--expires-at", "2099-01-01T00:00:00Z", "--name", "vendor")
    conn = create_connection(ctl, "--auth", "bearer", "--credential", cred, "--health-check", "GET /health",
                             "--rate-limit", "1.5", base_url="https://api.example.com/v1?key=querysecret")
    run = enqueue(ctl, conn, "--idempotency-key", "k-json")
    claim(db, run)
    record(db, run, 1, "dead_lettered", status_code=422, outcome="http_error", error_class="validation",
           error_code="http_422", summary="rejected", next_action="escalate")
    db.query("SELECT courier.degrade_connection(%s, 'credential refused (401)')", conn)

    connections = as_json(ctl, "connection", "list")
    shape(connections, {"connections": [CONNECTION]})
    [c] = connections["connections"]
    assert (c["id"], c["credential_version"], c["rate_limit_per_second"], c["status"]) == (conn, 1, 1.5, "degraded")
    assert "querysecret" not in json.dumps(connections)
    shape(as_json(ctl, "connection", "show", conn), CONNECTION)

    credentials = as_json(ctl, "credential", "list")
    shape(credentials, {"credentials": [CREDENTIAL]})
    shown = as_json(ctl, "credential", "show", cred)
    shape(shown, {**CREDENTIAL, "versions": [VERSION], "connections": [CONNECTION],
                  "rotation_policy": (OPT, ROTATION_POLICY), "rotation_events": [ROTATION_EVENT]})
    ctl("credential", "rotation", cred, "--rotate-every", "90d")
    shown = as_json(ctl, "credential", "show", cred)
    shape(shown, {**CREDENTIAL, "versions": [VERSION], "connections": [CONNECTION],
                  "rotation_policy": ROTATION_POLICY, "rotation_events": [ROTATION_EVENT]})
    assert (shown["active_version"], shown["name"], [x["id"] for x in shown["connections"]]) == (1, "vendor", [conn])
    assert "tok-json" not in json.dumps(shown) and "v1:" not in json.dumps(shown)

    runs = as_json(ctl, "run", "list")
    shape(runs, {"runs": [RUN]})
    detail = as_json(ctl, "run", "show", run)
    shape(detail, {**RUN, "timeline": [RUN_ATTEMPT], "failures": [FAILURE]})
    assert (detail["status"], detail["idempotency_key"], detail["timeline"][0]["error_code"],
            detail["failures"][0]["escalations"]) == ("dead_lettered", "k-json", "http_422", 1), detail

    status = as_json(ctl, "status")
    shape(status, STATUS)
    assert status["runs"]["dead_lettered"] == 1 and status["runs"]["degraded_connections"] == 1
    assert [x["id"] for x in status["connections_needing_attention"]] == [conn]


def test_schema_and_version_print_their_documented_shapes(ctl):
    schema = as_json(ctl, "schema")
    shape(schema, {"current_version": INT, "required_version": INT, "missing": [STR], "up_to_date": BOOL})
    assert schema["up_to_date"] is True and schema["missing"] == []
    version = as_json(ctl, "version")
    shape(version, {"version": STR})
    assert re.fullmatch(r"\d+\.\d+\.\d+", version["version"])


def test_json_of_an_unknown_id_is_nothing_on_stdout_and_exit_1(ctl):
    for args in (["subscription", "show", "sub_nope"], ["inspect", "dlv_nope"], ["run", "show", "run_nope"],
                 ["connection", "show", "conn_nope"], ["credential", "show", "cred_nope"]):
        result = ctl(*args, "--json", check=False)
        assert result.returncode == 1 and result.stdout == "", (args, result)
