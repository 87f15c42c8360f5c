"""End to end: the provider registry (sql/schema/70_providers.sql) through pgcourierctl and a running
pgcourierd. A provider becomes active only with an active API client, a connection needs an active
provider, a run naming an operation its provider does not declare is refused at enqueue (CLI and SQL)
while a declared one is executed, and no tenant sees or changes another tenant's providers."""
import json

import psycopg2
import pytest

from conftest import policy
from test_integration_runs import FAST, INTEGRATION, Courier, courier  # noqa: F401  (the fixture)

TENANT = "acme"


def refused(courier, *args):
    result = courier.ctl(*args, check=False)
    assert result.returncode == 1, (args, result.returncode, result.stdout, result.stderr)
    return result.stderr


def test_a_run_with_an_undeclared_operation_is_refused_and_a_declared_one_runs(courier, make_vendor):
    vendor = make_vendor()
    vendor.script("POST", "/v1/messages", (201, {}, {"sid": "SM1"}))
    provider = courier.printed_id("provider", "create", "--tenant", TENANT, "--key", "smsco", "--category", "sms",
                                  "--capabilities", "sms.send,sms.status", "--base-url", vendor.base_url)
    # registered: no connection yet, and no activation without an active API client
    err = refused(courier, "connection", "create", "--tenant", TENANT, "--provider", "smsco",
                  "--base-url", vendor.base_url)
    assert "a connection needs an active provider" in err, err
    err = refused(courier, "provider", "activate", provider)
    assert "has no active API client" in err, err
    err = refused(courier, "api-client", "create", "--provider", provider, "--name", "sdk", "--client-version", "1.0.0",
                  "--capabilities", "sms.send,voice.call")
    assert "voice.call are not capabilities of provider smsco" in err, err
    err = refused(courier, "api-client", "create", "--provider", provider, "--name", "sdk", "--client-version", "1.0")
    assert "is not a semantic version" in err, err
    client = courier.printed_id("api-client", "create", "--provider", provider, "--name", "sdk", "--client-version", "1.0.0",
                                "--active")
    assert courier.ctl("provider", "activate", provider).stdout.strip() == f"active {provider} (was registered)"

    conn = courier.connection(vendor.base_url, provider="smsco")
    assert courier.connection_row(conn)["provider_id"] == provider
    assert json.loads(courier.ctl("connection", "show", conn, "--json").stdout)["provider_id"] == provider
    assert f"provider=smsco ({provider})" in courier.ctl("connection", "show", conn).stdout
    courier.start()

    # undeclared: refused at the door, by pgcourierctl and by SQL, and nothing is enqueued
    err = refused(courier, "run", "enqueue", "--tenant", TENANT, "--connection", conn, "--operation", "voice.call",
                  "--path", "/v1/calls")
    assert 'courier.runs.operation: "voice.call" is not a capability of provider smsco' in err, err
    with pytest.raises(psycopg2.Error) as raised:
        courier.enqueue_sql(conn, operation="voice.call", path="/v1/calls")
    assert "is not a capability of provider smsco" in str(raised.value)
    assert courier.db.value("SELECT count(*) FROM courier.runs") == 0

    # declared: executed by the daemon
    run = courier.enqueue(conn, operation="sms.send", path="/v1/messages", body='{"to": "+1"}', external_ref="/sid")
    assert courier.wait_run(run, "completed")["external_ref"] == "SM1"
    assert vendor.requests("POST", "/v1/calls") == []

    shown = json.loads(courier.ctl("provider", "show", provider, "--json").stdout)
    assert (shown["status"], shown["capabilities"], shown["connections"]) == ("active", ["sms.send", "sms.status"], 1)
    assert [a["id"] for a in shown["api_clients"]] == [client]

    # the last active client deprecated: the provider is deprecated; no new connections, the old one still runs
    courier.ctl("api-client", "deprecate", client)
    listed = json.loads(courier.ctl("provider", "list", "--tenant", TENANT, "--json").stdout)["providers"]
    assert [(p["key"], p["status"]) for p in listed] == [("smsco", "deprecated")]
    err = refused(courier, "connection", "create", "--tenant", TENANT, "--provider", "smsco",
                  "--base-url", vendor.base_url)
    assert "a deprecated provider accepts no new connections" in err, err
    vendor.script("POST", "/v1/messages", (201, {}, {"sid": "SM2"}))
    again = courier.enqueue(conn, operation="sms.send", path="/v1/messages", body='{"to": "+2"}', external_ref="/sid")
    assert courier.wait_run(again, "completed")["external_ref"] == "SM2"


def test_no_tenant_sees_or_changes_another_tenants_providers(courier):
    provider = courier.printed_id("provider", "create", "--tenant", TENANT, "--key", "smsco",
                                  "--capabilities", "sms.send")
    courier.printed_id("provider", "create", "--key", "mailco", "--capabilities", "email.send")  # global
    # a key clash is per scope
    err = refused(courier, "provider", "create", "--tenant", TENANT, "--key", "smsco")
    assert 'provider key "smsco" is already registered for tenant acme' in err, err
    courier.printed_id("provider", "create", "--tenant", "globex", "--key", "smsco")

    seen = json.loads(courier.ctl("provider", "list", "--tenant", "globex", "--json").stdout)["providers"]
    assert sorted((p["key"], p["tenant_id"]) for p in seen) == [("mailco", None), ("smsco", "globex")]
    for args in (["provider", "show", provider, "--tenant", "globex"],
                 ["provider", "deprecate", provider, "--tenant", "globex"],
                 ["api-client", "create", "--provider", provider, "--name", "x", "--client-version", "1.0.0",
                  "--tenant", "globex"]):
        err = refused(courier, *args)
        assert f'no provider "{provider}"' in err, (args, err)
    err = refused(courier, "provider", "deprecate", "mailco", "--tenant", "globex")
    assert "is global; only an administrator" in err, err
    assert courier.db.value("SELECT status FROM courier.providers WHERE id = %s", provider) == "registered"
    # by key, globex's own smsco is the one it sees
    own = json.loads(courier.ctl("provider", "show", "smsco", "--tenant", "globex", "--json").stdout)
    assert own["tenant_id"] == "globex" and own["id"] != provider


def test_a_providers_rate_limit_is_one_budget_for_all_its_connections_and_daemons(courier, make_vendor):
    vendor = make_vendor()
    vendor.script("POST", "/v1/messages", (200, {}, {"sid": "SM"}))
    provider = courier.printed_id("provider", "create", "--tenant", TENANT, "--key", "smsco",
                                  "--capabilities", "sms.send", "--rate-limit", "4", "--burst", "1")
    courier.ctl("api-client", "create", "--provider", provider, "--name", "sdk", "--client-version", "1.0.0",
                "--active")
    courier.ctl("provider", "activate", provider)
    conns = [courier.connection(vendor.base_url, provider="smsco") for _ in range(2)]
    courier.start()
    second = courier._daemon_factory("d2", policies_file=courier._write_policies(
        {"default": policy(integration=INTEGRATION)}), **FAST)
    runs = [courier.enqueue(conns[i % 2], operation="sms.send", path="/v1/messages", body="{}") for i in range(8)]
    for run in runs:
        courier.wait_run(run, "completed", timeout=20)
    arrivals = sorted(r.at for r in vendor.requests("POST", "/v1/messages"))
    assert len(arrivals) == 8
    # 4 per second with a bucket of 1, whichever daemon and connection: 8 requests span at least ~7/4 s
    assert arrivals[-1] - arrivals[0] >= 1.5, arrivals
    once = courier.db.value("SELECT count(*) FROM courier.runs WHERE id = ANY(%s) AND attempts = 1", runs)
    assert once == 8, "waiting for the budget spends no attempt"
    assert second.proc.poll() is None, second.log()
