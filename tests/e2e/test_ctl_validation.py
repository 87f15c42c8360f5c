"""Validation at the door, attacked like a hostile tenant would: pgcourierctl refuses bad URLs, tenants and
policies before anything is written, with a clear error naming the option. Exit 2 when the value can never be
valid (URL syntax, the tenant grammar: a usage error), exit 1 when this installation refuses a well-formed value
(the policy's endpoint rules, a policy that does not exist). Also subscription update, and replay of an unknown
subscription."""
import json
import os

import pytest

from conftest import LOCAL_POLICIES, ROOT

DEFAULT_POLICIES = os.path.join(ROOT, "policies", "default.yaml")

# (url, what stderr says after "--url takes an absolute http:// or https:// URL: ")
SYNTAX = [
    ("not a url", "the URL contains a space"),
    ("http://h/a\r\nX-Injected: 1", "the URL contains the control character U+000D"),
    ("http://h/a\tb", "the URL contains the control character U+0009"),
    ("http://h/a b", "the URL contains a space"),
    ("http://user:pw@hooks.example.com/", "user:password@ is not allowed in a URL"),
    ("ftp://files.example.com/", 'scheme "ftp" is not allowed'),
    ("javascript:alert(1)", 'scheme "javascript" is not allowed'),
    ("http://", "the URL has no host"),
    ("http:///path", "the URL has no host"),
    ("http://hooks.example.com./in", "ends with a dot"),
    ("http://2130706433/", "is an IP address in a legacy spelling; write it as 127.0.0.1"),
    ("http://0x7f.1/", "write it as 127.0.0.1"),
    ("http://раураl.com/", "mixes Cyrillic and Latin letters"),
    ("http://xn--zz.com/", "is not valid IDNA"),
    ("http://h:99999/", "is not a number from 1 to 65535"),
    ("http://h/" + "a" * 10240, "the URL is 10249 bytes long; at most 2048 are allowed"),
    ("http://h/x#fragment", "the URL has a fragment"),
]


def counts(db):
    return db.value("SELECT (SELECT count(*) FROM courier.subscriptions) + (SELECT count(*) FROM "
                    "courier.subscription_secrets) + (SELECT count(*) FROM courier.connections)")


def create(ctl, url, *more, policies=LOCAL_POLICIES, tenant="acme"):
    return ctl("subscription", "create", "--tenant", tenant, "--url", url, "--events", "*", "--policies", policies,
               *more, check=False)


@pytest.mark.parametrize("url, message", SYNTAX, ids=[repr(u)[:40] for u, _ in SYNTAX])
def test_a_url_that_is_not_an_acceptable_http_url_is_a_usage_error_and_nothing_is_written(db, ctl, url, message):
    result = create(ctl, url)
    assert result.returncode == 2 and result.stdout == "", result
    assert result.stderr.startswith("pgcourierctl: --url takes an absolute http:// or https:// URL: "), result.stderr
    assert message in result.stderr, result.stderr
    assert "\r" not in result.stderr and "X-Injected" not in result.stderr.split("\n", 1)[1]
    connection = ctl("connection", "create", "--tenant", "acme", "--provider", "p", "--base-url", url,
                     "--policies", LOCAL_POLICIES, check=False)
    assert connection.returncode == 2 and "--base-url takes an absolute http:// or https:// URL: " + message \
        in connection.stderr.replace("\n", " ") or message in connection.stderr, connection
    assert counts(db) == 0


def test_userinfo_is_refused_with_how_to_authenticate_instead(db, ctl):
    result = create(ctl, "https://user:hunter2@hooks.example.com/in")
    assert result.returncode == 2
    assert "hint: Receivers authenticate pgcourier by verifying the Standard Webhooks signature" in result.stderr
    assert "hunter2" not in result.stderr
    assert counts(db) == 0


@pytest.mark.parametrize("url, reason", [
    ("http://hooks.example.com/in", "https is required by the policy"),
    ("https://169.254.169.254/latest/meta-data", "link-local"),
    ("https://[::ffff:169.254.169.254]/", "169.254.169.254"),
    ("https://127.0.0.1/in", "loopback"),
    ("https://10.1.2.3/in", "private"),
])
def test_a_destination_the_policys_endpoint_rules_refuse_exits_1_and_nothing_is_written(db, ctl, url, reason):
    result = create(ctl, url, policies=DEFAULT_POLICIES)
    assert result.returncode == 1 and result.stdout == "", result
    assert "--url: the endpoint rules of policy 'default'" in result.stderr and reason in result.stderr, result.stderr
    assert counts(db) == 0


def test_an_unknown_policy_exits_1_naming_the_policies_it_has(db, ctl):
    result = create(ctl, "http://127.0.0.1:9/in", "--policy", "gold")
    assert result.returncode == 1
    assert "policy 'gold' is not in" in result.stderr and "default, impatient, patient" in result.stderr, result.stderr
    assert counts(db) == 0


def test_without_the_policies_file_the_url_is_checked_for_syntax_and_a_warning_says_what_was_not(db, ctl, tmp_path):
    result = create(ctl, "http://127.0.0.1:9/in", policies=str(tmp_path / "missing.yaml"))
    assert result.returncode == 0, result
    assert "warning: the policies file is not at hand" in result.stderr, result.stderr
    assert "loopback" in result.stderr  # what the strictest rules would say, as a warning
    assert db.value("SELECT count(*) FROM courier.subscriptions") == 1


def test_a_unicode_host_is_stored_in_its_idna_ascii_form(db, ctl):
    result = create(ctl, "https://Bücher.example/in?q=1", policies=DEFAULT_POLICIES)
    assert result.returncode == 0, result
    assert "xn--bcher-kva.example" in result.stderr  # the note says what is stored
    assert db.value("SELECT url FROM courier.subscriptions") == "https://xn--bcher-kva.example/in?q=1"


@pytest.mark.parametrize("tenant", ["   ", "a b", "ac\nme", "acme/../x", "Ünïcode", "-x", "a" * 129])
def test_a_tenant_outside_the_grammar_is_a_usage_error_for_every_command_that_writes(db, ctl, tmp_path, tenant):
    secret = tmp_path / "secret"
    secret.write_text("s3cret")
    for args in (["subscription", "create", "--tenant", tenant, "--url", "https://h.example/", "--events", "*"],
                 ["connection", "create", "--tenant", tenant, "--provider", "p", "--base-url", "https://h.example"],
                 ["credential", "create", "--tenant", tenant, "--from-file", str(secret)],
                 ["publish", "--tenant", tenant, "--type", "order.paid"]):
        result = ctl(*args, check=False)
        assert result.returncode == 2, (args, result)
        assert result.stderr.startswith("pgcourierctl: --tenant: ") and "1 to 128 characters" in result.stderr, \
            result.stderr
    assert counts(db) == 0 and db.value("SELECT count(*) FROM courier.events") == 0


def test_subscription_update_changes_every_mutable_field_and_clears_with_none(db, ctl, receiver, create_subscription):
    sub, _ = create_subscription(receiver.url("/ok"))
    result = ctl("subscription", "update", sub, "--url", receiver.url("/v2"), "--events", "order.paid, invoice.*",
                 "--policy", "patient", "--description", "orders", "--ordering", "fifo", "--ordering-key-field",
                 "order_id", "--max-in-flight", "4", "--rate-limit", "2.5", "--burst", "10",
                 "--policies", LOCAL_POLICIES)
    assert result.stdout.startswith(f"updated {sub}: url, event_types, policy, description, ordering, "
                                    "ordering_key_field, max_in_flight, rate_limit_per_second, rate_limit_burst\n"), \
        result.stdout
    row = db.rows("SELECT url, event_types, policy, description, ordering, ordering_key_field, max_in_flight, "
                  "rate_limit_per_second, rate_limit_burst FROM courier.subscriptions WHERE id = %s", sub)[0]
    assert row == {"url": receiver.url("/v2"), "event_types": ["order.paid", "invoice.*"], "policy": "patient",
                   "description": "orders", "ordering": "fifo", "ordering_key_field": "order_id", "max_in_flight": 4,
                   "rate_limit_per_second": 2.5, "rate_limit_burst": 10}
    assert "limits:  2.5 requests/s, burst 10, 4 in flight at most" in result.stdout

    cleared = ctl("subscription", "update", sub, "--max-in-flight", "none", "--rate-limit", "", "--description", "",
                  "--json")
    updated = json.loads(cleared.stdout)
    assert (updated["max_in_flight"], updated["rate_limit_per_second"], updated["description"],
            updated["rate_limit_burst"]) == (None, None, None, 10), updated


def test_subscription_update_refuses_like_create_and_changes_nothing(db, ctl, receiver, create_subscription):
    sub, _ = create_subscription(receiver.url("/ok"))
    before = db.rows("SELECT * FROM courier.subscriptions WHERE id = %s", sub)
    for args, code, message in [
            (["--url", "http://u:p@h/"], 2, "user:password@"),
            (["--url", "https://10.0.0.1/", "--policies", DEFAULT_POLICIES], 1, "private"),
            (["--policy", "gold", "--policies", LOCAL_POLICIES], 1, "policy 'gold' is not in"),
            (["--events", " , "], 2, "--events needs at least one item"),
            (["--burst", "0"], 2, "--burst takes a whole number from 1 to 1000000")]:
        result = ctl("subscription", "update", sub, *args, check=False)
        assert result.returncode == code and message in result.stderr and result.stdout == "", (args, result)
    assert db.rows("SELECT * FROM courier.subscriptions WHERE id = %s", sub) == before
    unknown = ctl("subscription", "update", "sub_nope", "--max-in-flight", "2", check=False)
    assert (unknown.returncode, unknown.stderr) == (1, "pgcourierctl: no subscription sub_nope\n")


def test_replay_of_an_unknown_subscription_or_tenant_says_so_and_exits_1(db, ctl, receiver, create_subscription):
    create_subscription(receiver.url("/ok"))
    for args, message in [(["--subscription", "sub_nope"], "no subscription sub_nope; nothing replayed"),
                          (["--tenant", "nobody"], "tenant nobody has no subscriptions; nothing replayed"),
                          (["--subscription", "sub_nope", "--dry-run"], "no subscription sub_nope")]:
        result = ctl("replay", *args, check=False)
        assert result.returncode == 1 and message in result.stderr and result.stdout == "", (args, result)
    assert ctl("replay", "--tenant", "acme").stdout == "replayed 0 deliveries\n"
    redeliver = ctl("redeliver", "--subscription", "sub_nope", "--since", "2026-01-01T00:00:00Z", check=False)
    assert (redeliver.returncode, redeliver.stderr) == (1, "pgcourierctl: no subscription sub_nope\n"), redeliver


def test_revoking_the_last_secret_is_refused_with_the_databases_words(db, ctl, receiver, create_subscription):
    sub, _ = create_subscription(receiver.url("/ok"))
    secret_id = db.value("SELECT id FROM courier.subscription_secrets WHERE subscription_id = %s", sub)
    result = ctl("subscription", "revoke-secret", sub, "--secret-id", secret_id, check=False)
    assert result.returncode == 1, result
    assert f"refusing to revoke {secret_id}: it is the last active secret of {sub}" in result.stderr, result.stderr
    assert f"rotate-secret {sub}" in result.stderr
    unknown = ctl("subscription", "revoke-secret", sub, "--secret-id", "whs_nope", check=False)
    assert (unknown.returncode, unknown.stderr) == (1, f"pgcourierctl: {sub} has no secret whs_nope\n")
    assert db.value("SELECT count(*) FROM courier.subscription_secrets WHERE revoked_at IS NULL") == 1
