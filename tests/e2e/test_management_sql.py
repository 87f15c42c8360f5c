"""The checks and the management API of sql/schema/50_management.sql, in SQL, for producers and operators
who do not use pgcourierctl: courier.check_endpoint_url / check_tenant_id and the triggers that call them
on every write of a subscription, connection or credential; create_subscription, update_subscription
(PATCH semantics), rotate_subscription_secret and revoke_subscription_secrets, also as a courier_operator
login. Every refusal is SQLSTATE 22023 (or no_data_found / 55000) with a message naming the field, and
writes nothing."""
import secrets
import urllib.parse

import psycopg2
import psycopg2.errors
import pytest

from conftest import Database

SEALED = "v1:" + "A" * 40  # the form SecretBox::Seal writes; the database never opens it

# (url, what the message says after naming the field)
HOSTILE_URLS = [
    ("not a url", "the URL contains a space"),
    ("http://h/a\r\nX-Injected: 1", "the URL contains the control character U+000D"),
    ("http://h/\x01", "the URL contains the control character U+0001"),
    ("http://h/a\tb", "the URL contains the control character U+0009"),
    ("http://h/a b", "the URL contains a space"),
    ("http://user:pw@h/", "user:password@ is not allowed in a URL"),
    ("https://token@h/", "user:password@ is not allowed in a URL"),
    ("ftp://files.example.com/", 'scheme "ftp" is not allowed; only http and https are'),
    ("javascript:alert(1)", 'scheme "javascript" is not allowed'),
    ("//127.0.0.1/hook", "\"//127.0.0.1/hook\" is not an absolute URL"),
    ("hooks.example.com/in", "\"hooks.example.com/in\" is not an absolute URL"),
    ("http:hooks.example.com", "expected // after http:"),
    ("http://", "the URL has no host"),
    ("http:///path", "the URL has no host"),
    ("http://:80/", "the URL has no host"),
    ("http://bücher.example/", 'host "bücher.example" is not ASCII; store its IDNA ASCII (punycode) form'),
    ("http://раураl.com/", "is not ASCII"),
    ("http://hooks.example.com./", 'host "hooks.example.com." ends with a dot'),
    ("http://a..b/", "has an empty label"),
    ("http://" + "a" * 64 + ".example/", "longer than 63 characters"),
    ("http://h_!x/", "is not a valid host name"),
    ("http://[::1/hook", "is not a valid IPv6 literal"),
    ("http://2130706433/", 'host "2130706433" is an IP address in a legacy spelling'),
    ("http://0x7f.1/", 'host "0x7f.1" is an IP address in a legacy spelling'),
    ("http://0x7f000001/", "is an IP address in a legacy spelling"),
    ("http://127.1/", "is an IP address in a legacy spelling"),
    ("http://0177.0.0.1/", "is an IP address in a legacy spelling"),
    ("http://256.1.1.1/", "is an IP address in a legacy spelling (or not a valid one)"),
    ("http://h:99999/", 'port "99999" is not a number from 1 to 65535'),
    ("http://h:0/", 'port "0" is not a number'),
    ("http://h:/", 'port "" is not a number'),
    ("http://h/x#frag", "the URL has a fragment"),
    ("http://h\\@evil/", "user:password@ is not allowed"),
    ("http://h/a\\b", "the URL contains a backslash"),
    ("http://h/bücher", 'the URL contains the non-ASCII character "ü" in its path or query'),
    ("http://h/" + "a" * 10240, "the URL is 10249 bytes long; at most 2048 are allowed"),
]

ACCEPTED_URLS = ["http://127.0.0.1:8080/hook?x=1", "https://hooks.example.com/in", "HTTPS://Hooks.Example.COM",
                 "http://[::1]:9/x", "http://[::ffff:169.254.169.254]/", "http://169.254.169.254/latest",
                 "https://xn--bcher-kva.example/in?token=a%20b", "http://localhost/a_b-c~d"]

HOSTILE_TENANTS = ["", "   ", " acme", "acme ", "a b", "a/b", "ac\nme", "Ünïcode", "-acme", ".acme", "a" * 129, "a;b"]


def raises(db, sql, *args):
    """The psycopg2 error a statement raises (it must raise)."""
    with pytest.raises(psycopg2.Error) as info:
        db.query(sql, *args)
    return info.value


@pytest.mark.parametrize("url, message", HOSTILE_URLS, ids=[repr(u)[:40] for u, _ in HOSTILE_URLS])
def test_check_endpoint_url_refuses_a_hostile_url_naming_the_field(db, url, message):
    error = raises(db, "SELECT courier.check_endpoint_url(%s, 'base_url')", url)
    assert error.pgcode == "22023", (error.pgcode, error.pgerror)
    primary = error.diag.message_primary
    assert primary.startswith("base_url: ") and message in primary, primary


def test_userinfo_and_non_ascii_hosts_come_with_a_hint(db):
    error = raises(db, "SELECT courier.check_endpoint_url('http://u:p@h/')")
    assert "Standard Webhooks signature" in error.diag.message_hint, error.diag.message_hint
    error = raises(db, "SELECT courier.check_endpoint_url('http://bücher.example/')")
    assert "xn--bcher-kva.example" in error.diag.message_hint, error.diag.message_hint


@pytest.mark.parametrize("url", ACCEPTED_URLS)
def test_check_endpoint_url_accepts_and_returns_a_plain_http_url(db, url):
    # Whether a destination may be contacted (loopback, metadata addresses) is the policy's, decided by the
    # daemon: the syntax checks accept what the test receivers use.
    assert db.value("SELECT courier.check_endpoint_url(%s)", url) == url


@pytest.mark.parametrize("tenant", HOSTILE_TENANTS, ids=[repr(t)[:20] for t in HOSTILE_TENANTS])
def test_check_tenant_id_refuses_anything_outside_the_grammar(db, tenant):
    error = raises(db, "SELECT courier.check_tenant_id(%s)", tenant)
    assert error.pgcode == "22023"
    assert error.diag.message_primary.startswith("tenant_id: "), error.diag.message_primary
    assert "1 to 128 characters" in error.diag.message_primary
    assert "\n" not in error.diag.message_primary  # untrusted text is quoted with escapes


def test_check_tenant_id_accepts_the_documented_grammar(db):
    for tenant in ["acme", "A", "tenant-1:eu.prod_2", "9", "a" * 128]:
        assert db.value("SELECT courier.check_tenant_id(%s)", tenant) == tenant


def counts(db):
    return db.value("SELECT (SELECT count(*) FROM courier.subscriptions) + (SELECT count(*) FROM courier.connections)"
                    " + (SELECT count(*) FROM courier.credentials)")


def test_every_writer_meets_the_checks_on_insert_and_update_and_nothing_is_written(db):
    for sql, args, message in [
            ("INSERT INTO courier.subscriptions (tenant_id, url, event_types) VALUES (%s, %s, '{*}')",
             ("acme", "http://user:pw@h/"), "url: user:password@"),
            ("INSERT INTO courier.subscriptions (tenant_id, url, event_types) VALUES (%s, %s, '{*}')",
             ("   ", "https://h/"), "tenant_id: "),
            ("INSERT INTO courier.connections (tenant_id, provider, base_url) VALUES (%s, 'p', %s)",
             ("acme", "https://h/\r\n"), "base_url: the URL contains the control character U+000D"),
            ("INSERT INTO courier.connections (tenant_id, provider, base_url) VALUES (%s, 'p', %s)",
             ("a b", "https://h/"), "tenant_id: "),
            ("INSERT INTO courier.credentials (tenant_id) VALUES (%s)", ("   ",), "tenant_id: ")]:
        error = raises(db, sql, *args)
        assert error.pgcode == "22023" and error.diag.message_primary.startswith(message), error.pgerror
    assert counts(db) == 0

    sub = db.value("INSERT INTO courier.subscriptions (tenant_id, url, event_types) "
                   "VALUES ('acme', 'https://h.example/in', '{*}') RETURNING id")
    conn = db.value("INSERT INTO courier.connections (tenant_id, provider, base_url) "
                    "VALUES ('acme', 'p', 'https://api.example') RETURNING id")
    for sql, message in [
            ("UPDATE courier.subscriptions SET url = 'ftp://h/' WHERE id = %s", "url: scheme"),
            ("UPDATE courier.subscriptions SET tenant_id = '' WHERE id = %s", "tenant_id: "),
            ("UPDATE courier.connections SET base_url = 'http://bücher.example' WHERE id = %s", "base_url: host"),
            ("UPDATE courier.connections SET token_url = 'http://u:p@auth/' WHERE id = %s", "token_url: user")]:
        error = raises(db, sql, conn if "connections" in sql else sub)
        assert error.pgcode == "22023" and error.diag.message_primary.startswith(message), error.pgerror
    assert db.value("SELECT url FROM courier.subscriptions WHERE id = %s", sub) == "https://h.example/in"
    assert db.value("SELECT base_url || coalesce(token_url, '') FROM courier.connections WHERE id = %s", conn) == \
        "https://api.example"


def test_the_daemons_updates_of_counters_do_not_run_the_url_checks(db):
    # A row written with the checks off (before they existed) keeps working for the daemon's own updates.
    sub = db.unchecked("INSERT INTO courier.subscriptions (tenant_id, url, event_types) "
                       "VALUES ('acme', 'not a url', '{*}') RETURNING id")[0][0]
    db.query("UPDATE courier.subscriptions SET consecutive_failures = 3, last_error = 'x' WHERE id = %s", sub)
    assert db.value("SELECT consecutive_failures FROM courier.subscriptions WHERE id = %s", sub) == 3


def create(db, tenant="acme", url="https://hooks.example.com/in", types="{order.*}", **named):
    names = "".join(f", {k} => %s" for k in named)
    return db.value(f"SELECT courier.create_subscription(%s, %s, %s::text[]{names})", tenant, url, types,
                    *named.values())


def test_create_subscription_stores_the_subscription_and_its_sealed_secret_in_one_call(db):
    sub = create(db, sealed_secret=SEALED, secret_last4="abcd", policy="critical", description="orders",
                 subscription_id="sub_orders")
    assert sub == "sub_orders"
    row = db.rows("SELECT tenant_id, url, event_types, policy, description FROM courier.subscriptions "
                  "WHERE id = %s", sub)[0]
    assert row == {"tenant_id": "acme", "url": "https://hooks.example.com/in", "event_types": ["order.*"],
                   "policy": "critical", "description": "orders"}
    assert db.rows("SELECT sealed_secret, last4 FROM courier.subscription_secrets WHERE subscription_id = %s", sub) \
        == [{"sealed_secret": SEALED, "last4": "abcd"}]
    generated = create(db)
    assert generated.startswith("sub_") and generated != sub
    assert db.value("SELECT count(*) FROM courier.subscription_secrets WHERE subscription_id = %s", generated) == 0


@pytest.mark.parametrize("named, message", [
    ({"url": "http://u:p@h/"}, "url: user:password@"),
    ({"tenant": " acme"}, "tenant_id: "),
    ({"types": "{}"}, "event_types: at least one event type"),
    ({"types": '{"order.*",""}'}, 'event_types: "" is not an event type'),
    ({"types": '{" order.*"}'}, "event_types: \" order.*\" is not an event type"),
    ({"policy": ""}, 'policy: "" is not a policy name'),
    ({"sealed_secret": SEALED, "secret_last4": "abcd"}, "subscription_id: needed with sealed_secret"),
    ({"sealed_secret": "plain-text-secret", "secret_last4": "abcd", "subscription_id": "sub_x"}, "sealed_secret: "),
    ({"subscription_id": "sub x"}, 'subscription_id: "sub x" is not valid'),
])
def test_create_subscription_refuses_bad_input_and_writes_nothing(db, named, message):
    args = {"tenant": "acme", "url": "https://h.example/", "types": "{order.*}", **named}
    error = raises(db, "SELECT courier.create_subscription(%s, %s, %s::text[], sealed_secret => %s, "
                       "secret_last4 => %s, policy => coalesce(%s, 'default'), subscription_id => %s)",
                   args["tenant"], args["url"], args["types"], args.get("sealed_secret"), args.get("secret_last4"),
                   args.get("policy"), args.get("subscription_id"))
    assert error.pgcode == "22023" and error.diag.message_primary.startswith(message), error.pgerror
    assert counts(db) == 0


def test_create_subscription_refuses_an_id_that_exists(db):
    create(db, subscription_id="sub_a")
    error = raises(db, "SELECT courier.create_subscription('acme', 'https://h/', '{*}', subscription_id => 'sub_a')")
    assert error.pgcode == "23505" and "a subscription sub_a already exists" in error.pgerror


def update(db, sub, changes):
    return db.rows("SELECT * FROM courier.update_subscription(%s, %s::jsonb)", sub, changes)[0]


def test_update_subscription_changes_only_the_keys_given_and_null_clears(db):
    sub = create(db, description="first")
    row = update(db, sub, '{"url": "https://new.example/in", "max_in_flight": 4, "rate_limit_per_second": 2.5, '
                          '"rate_limit_burst": 10, "ordering": "fifo", "ordering_key_field": "order_id", '
                          '"event_types": ["order.paid", "invoice.*"], "policy": "critical"}')
    assert (row["url"], row["max_in_flight"], row["rate_limit_per_second"], row["rate_limit_burst"],
            row["ordering"], row["ordering_key_field"], row["event_types"], row["policy"], row["description"]) == \
        ("https://new.example/in", 4, 2.5, 10, "fifo", "order_id", ["order.paid", "invoice.*"], "critical", "first")
    row = update(db, sub, '{"max_in_flight": null, "description": null, "ordering_key_field": null}')
    assert (row["max_in_flight"], row["description"], row["ordering_key_field"], row["rate_limit_burst"]) == \
        (None, None, None, 10)
    assert row["updated_at"] > row["created_at"]


@pytest.mark.parametrize("changes, message", [
    ('{"urll": "https://h/", "zz": 1}', 'changes: unknown field "urll", "zz"; the fields that can change are url, '),
    ('{"tenant_id": "globex"}', 'changes: unknown field "tenant_id"'),
    ('[]', "changes: expected a JSON object"),
    ('{"url": null}', "url: cannot be cleared"),
    ('{"event_types": null}', "event_types: cannot be cleared"),
    ('{"url": "ftp://h/"}', "url: scheme"),
    ('{"url": 5}', "url: expected a JSON string"),
    ('{"event_types": "order.*"}', "event_types: expected a JSON array of strings"),
    ('{"event_types": [1]}', "event_types: expected a JSON array of strings"),
    ('{"event_types": []}', "event_types: at least one"),
    ('{"max_in_flight": 1.5}', "max_in_flight: expected a whole number from 1 to 1000000"),
    ('{"max_in_flight": 0}', "max_in_flight: expected a whole number"),
    ('{"max_in_flight": "4"}', "max_in_flight: expected a JSON whole number"),
    ('{"rate_limit_per_second": 0}', "rate_limit_per_second: expected requests per second"),
    ('{"ordering": "lifo"}', 'ordering: expected none or fifo, got "lifo"'),
])
def test_update_subscription_refuses_bad_changes_and_changes_nothing(db, changes, message):
    sub = create(db)
    before = db.rows("SELECT * FROM courier.subscriptions WHERE id = %s", sub)
    error = raises(db, "SELECT courier.update_subscription(%s, %s::jsonb)", sub, changes)
    assert error.pgcode == "22023" and error.diag.message_primary.startswith(message), error.pgerror
    assert db.rows("SELECT * FROM courier.subscriptions WHERE id = %s", sub) == before


def test_update_subscription_of_an_unknown_id_raises_no_data_found(db):
    error = raises(db, "SELECT courier.update_subscription('sub_nope', '{\"url\": \"https://h/\"}')")
    assert error.pgcode == "P0002" and error.diag.message_primary == "no subscription sub_nope"


def secrets_of(db, sub):
    return db.rows("SELECT last4, revoked_at IS NOT NULL AS revoked, expires_at IS NOT NULL AS expiring "
                   "FROM courier.subscription_secrets WHERE subscription_id = %s ORDER BY created_at", sub)


def test_rotate_then_revoke_keeps_one_secret_signing_at_every_moment(db):
    sub = create(db, sealed_secret=SEALED, secret_last4="aaaa", subscription_id="sub_r")
    rotated = db.rows("SELECT * FROM courier.rotate_subscription_secret('sub_r', %s, 'bbbb', interval '1 hour')",
                      SEALED)
    assert [(r["last4"], r["change"]) for r in rotated] == [("bbbb", "created"), ("aaaa", "expiring")]
    assert secrets_of(db, sub) == [{"last4": "aaaa", "revoked": False, "expiring": True},
                                   {"last4": "bbbb", "revoked": False, "expiring": False}]
    newest = rotated[0]["id"]
    error = raises(db, "SELECT * FROM courier.revoke_subscription_secrets('sub_r', 'whs_nope')")
    assert error.pgcode == "P0002" and error.diag.message_primary == "sub_r has no secret whs_nope"
    revoked = db.rows("SELECT * FROM courier.revoke_subscription_secrets('sub_r')")
    assert [(r["last4"], r["change"]) for r in revoked] == [("aaaa", "revoked"), ("bbbb", "active")]
    error = raises(db, "SELECT * FROM courier.revoke_subscription_secrets('sub_r', %s)", newest)
    assert error.pgcode == "55000" and "it is the last active secret of sub_r" in error.diag.message_primary
    assert "rotate-secret sub_r" in error.diag.message_hint
    assert [s["revoked"] for s in secrets_of(db, sub)] == [True, False]
    error = raises(db, "SELECT * FROM courier.rotate_subscription_secret('sub_nope', %s, 'cccc')", SEALED)
    assert error.pgcode == "P0002"


def test_the_management_functions_pin_their_search_path_and_are_granted_to_courier_operator(db, db_url):
    functions = ["create_subscription", "update_subscription", "rotate_subscription_secret",
                 "revoke_subscription_secrets"]
    rows = db.rows("SELECT p.proname, p.prosecdef, p.proconfig FROM pg_proc p "
                   "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'courier' AND p.proname = ANY (%s)",
                   functions)
    assert sorted(r["proname"] for r in rows) == sorted(functions)
    for r in rows:
        assert r["prosecdef"] and "search_path=pg_catalog, courier, pg_temp" in (r["proconfig"] or []), r
    if db.value("SELECT count(*) FROM pg_roles WHERE rolname = 'courier_operator'") == 0:
        pytest.skip("the migrator could not create roles")
    role, password = "mgmt_operator_" + secrets.token_hex(4), secrets.token_hex(12)
    db.query(f"CREATE ROLE {role} LOGIN PASSWORD %s IN ROLE courier_operator", password)
    try:
        parts = urllib.parse.urlsplit(db_url)
        operator = Database(parts._replace(netloc=f"{role}:{password}@{parts.hostname}:{parts.port}").geturl())
        try:
            sub = create(operator, sealed_secret=SEALED, secret_last4="aaaa", subscription_id="sub_op")
            assert update(operator, sub, '{"max_in_flight": 2}')["max_in_flight"] == 2
            operator.query("SELECT * FROM courier.rotate_subscription_secret('sub_op', %s, 'bbbb', '0')", SEALED)
            operator.query("SELECT * FROM courier.revoke_subscription_secrets('sub_op')")
            assert operator.value("SELECT courier.check_endpoint_url('https://h/')") == "https://h/"
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                operator.query("SELECT sealed_secret FROM courier.subscription_secrets")
        finally:
            operator.close()
    finally:
        db.query(f"DROP ROLE {role}")
