"""End to end: the event side of issue 17 through pgcourierctl and a running pgcourierd: payload
filters, scopes, the event catalog (schema checks, send-example) and the change feed."""
import json
import time

import psycopg2

from conftest import wait_feed_settled, wait_for


def error_of(db, sql, *args):
    """The database's message for sql, or None when it succeeds."""
    try:
        db.query(sql, *args)
        return None
    except psycopg2.Error as e:
        return e.pgerror or str(e)


def created_id(result):
    return next(line.split()[-1] for line in result.stdout.splitlines() if line.startswith("created subscription"))


def subscribe(ctl, receiver, path, *options, events="*", tenant="acme"):
    out = ctl("subscription", "create", "--tenant", tenant, "--url", receiver.url(path), "--events", events, *options)
    secret = next(line.split()[-1] for line in out.stdout.splitlines() if "signing secret" in line)
    receiver.secrets.append(secret)
    return created_id(out)


def delivered(db, sub_id):
    return db.value("SELECT count(*) FROM courier.deliveries WHERE subscription_id = %s AND status = 'delivered'",
                    sub_id)


def bodies(receiver, path):
    return [json.loads(hit["body"]) for hit in receiver.hits_for(path)]


def test_a_filtered_subscription_receives_only_matching_events(db, ctl, make_receiver, daemon_factory):
    receiver = make_receiver()
    filtered = subscribe(ctl, receiver, "/big", "--filter", "$.amount > 100", events="order.*")
    everything = subscribe(ctl, receiver, "/all", events="order.*")
    daemon_factory("d1")
    amounts = [50, 150, 100, 101, 7]
    for amount in amounts:
        ctl("publish", "--tenant", "acme", "--type", "order.created", "--payload", json.dumps({"amount": amount}))
    db.publish("acme", "order.created", '{"amount": "lots"}')  # not a number: no match, no error
    wait_for(lambda: delivered(db, everything) == len(amounts) + 1, what="every event at the unfiltered receiver")
    wait_for(lambda: delivered(db, filtered) == 2, what="the matching events at the filtered receiver")
    time.sleep(0.5)
    assert sorted(b["data"]["amount"] for b in bodies(receiver, "/big")) == [101, 150]
    assert all(hit["verified"] for hit in receiver.hits_for("/big"))
    # No delivery row at all for the others: the filter is applied at fan-out.
    assert db.value("SELECT count(*) FROM courier.deliveries WHERE subscription_id = %s", filtered) == 2

    shown = json.loads(ctl("subscription", "show", filtered, "--json").stdout)
    assert shown["filter"] == '($."amount" > 100)' and shown["scope"] is None
    # Changed and cleared by update.
    ctl("subscription", "update", filtered, "--filter", "$.amount < 10")
    ctl("publish", "--tenant", "acme", "--type", "order.created", "--payload", '{"amount": 5}')
    wait_for(lambda: delivered(db, filtered) == 3, what="the newly matching event")
    ctl("subscription", "update", filtered, "--filter", "none")
    assert json.loads(ctl("subscription", "show", filtered, "--json").stdout)["filter"] is None


def test_an_invalid_filter_is_refused_at_create_with_postgresqls_message_and_nothing_is_written(db, ctl, receiver):
    for bad, message in [("$.amount >", "filter: syntax error at end of jsonpath input"),
                         ("$.amount", "is a path, not a predicate"),
                         ("$.amount ? (@ > 1)", "is a path, not a predicate")]:
        result = ctl("subscription", "create", "--tenant", "acme", "--url", receiver.url("/x"), "--events", "*",
                     "--filter", bad, check=False)
        assert result.returncode == 1, result
        assert message in result.stderr, result.stderr
    assert db.value("SELECT count(*) FROM courier.subscriptions") == 0
    assert db.value("SELECT count(*) FROM courier.subscription_secrets") == 0
    sub = created_id(ctl("subscription", "create", "--tenant", "acme", "--url", receiver.url("/x"), "--events", "*"))
    result = ctl("subscription", "update", sub, "--filter", "$x > 1", check=False)
    assert result.returncode == 1 and "could not find jsonpath variable" in result.stderr


def test_a_scoped_subscription_receives_only_events_with_its_labels(db, ctl, make_receiver, daemon_factory):
    receiver = make_receiver()
    web_f1 = subscribe(ctl, receiver, "/web-f1", "--scope", "channel=web,facility=f1")
    web = subscribe(ctl, receiver, "/web", "--scope", "channel=web")
    everything = subscribe(ctl, receiver, "/all")
    daemon_factory("d1")
    published = [("channel=web,facility=f1", 1), ("channel=web,facility=f2", 2), ("channel=app,facility=f1", 3),
                 ("", 4)]
    for labels, n in published:
        args = ["publish", "--tenant", "acme", "--type", "visit", "--payload", json.dumps({"n": n})]
        ctl(*args, *(["--labels", labels] if labels else []))
    # A producer's SQL call with labels.
    db.query("SELECT courier.publish('acme', 'visit', '{\"n\": 5}', labels => '{\"channel\": \"web\", "
             "\"facility\": \"f1\", \"org\": \"o1\"}')")
    wait_for(lambda: delivered(db, everything) == 5, what="every event at the unscoped receiver")
    wait_for(lambda: delivered(db, web) == 3 and delivered(db, web_f1) == 2, what="the scoped receivers' events")
    time.sleep(0.5)
    assert sorted(b["data"]["n"] for b in bodies(receiver, "/web-f1")) == [1, 5]
    assert sorted(b["data"]["n"] for b in bodies(receiver, "/web")) == [1, 2, 5]
    shown = json.loads(ctl("subscription", "show", web_f1, "--json").stdout)
    assert shown["scope"] == {"channel": "web", "facility": "f1"}

    # Labels of the wrong shape are refused, naming the field; nothing is published.
    before = db.value("SELECT count(*) FROM courier.events")
    result = ctl("publish", "--tenant", "acme", "--type", "visit", "--labels", "channel", check=False)
    assert result.returncode == 2 and "--labels: expected KEY=VALUE" in result.stderr
    for labels, message in [('{"channel": 1}', "courier.events.labels.channel: expected a string, got a JSON number"),
                            ('["web"]', "courier.events.labels: expected a JSON object of strings")]:
        error = error_of(db, "SELECT courier.publish('acme', 'visit', '{}', labels => %s::jsonb)", labels)
        assert message in str(error), error
    assert db.value("SELECT count(*) FROM courier.events") == before


def test_the_catalog_holds_payloads_to_their_schema_and_sends_the_specimen_to_one_subscription(
        db, ctl, make_receiver, daemon_factory):
    receiver = make_receiver()
    schema = {"type": "object", "required": ["amount"], "additionalProperties": False,
              "properties": {"amount": {"type": "number", "minimum": 0}, "currency": {"enum": ["EUR", "USD"]}}}
    ctl("event-type", "create", "order.created", "--tenant", "acme", "--description", "an order was placed",
        "--schema", json.dumps(schema), "--specimen", '{"amount": 120, "currency": "EUR"}')
    listed = json.loads(ctl("event-type", "list", "--tenant", "acme", "--json").stdout)["event_types"]
    assert [(t["name"], t["tenant_id"], t["schema"]) for t in listed] == [("order.created", "acme", schema)]
    shown = ctl("event-type", "show", "order.created", "--tenant", "acme").stdout
    assert "an order was placed" in shown and '"amount": 120' in shown

    result = ctl("publish", "--tenant", "acme", "--type", "order.created", "--payload", '{"amount": "x"}', check=False)
    assert result.returncode == 1
    assert "$.amount: expected number, got string" in result.stderr, result.stderr
    error = error_of(db, "INSERT INTO courier.events (tenant_id, event_type, payload) "
                         "VALUES ('acme', 'order.created', '{\"amount\": 1, \"extra\": 2}')")
    assert "$.extra: not allowed" in str(error)

    # acme now uses the catalog: a subscription to an unknown type is refused.
    result = ctl("subscription", "create", "--tenant", "acme", "--url", receiver.url("/x"), "--events", "invoice.paid",
                 check=False)
    assert result.returncode == 1 and '"invoice.paid" is not an event type of tenant acme' in result.stderr

    target = subscribe(ctl, receiver, "/target", events="order.*")
    other = subscribe(ctl, receiver, "/other", events="order.created")
    daemon_factory("d1")
    out = ctl("event-type", "send-example", "order.created", "--subscription", target).stdout
    assert "sent the specimen" in out
    wait_for(lambda: delivered(db, target) == 1, what="the specimen at the target")
    time.sleep(0.5)
    assert bodies(receiver, "/target")[0]["data"] == {"amount": 120, "currency": "EUR"}
    assert receiver.hits_for("/other") == []
    assert db.value("SELECT count(*) FROM courier.deliveries WHERE subscription_id = %s", other) == 0


def test_the_change_feed_pages_with_a_cursor_and_filters(db, ctl):
    ids = [db.publish("acme", "order.created" if i % 2 else "invoice.sent", json.dumps({"i": i})) for i in range(5)]
    db.publish("globex", "order.created")
    wait_feed_settled(db)
    seen, after = [], None
    for _ in range(10):
        args = ["events", "--tenant", "acme", "--limit", "2", "--json"] + (["--after", after] if after else [])
        page = json.loads(ctl(*args).stdout)
        if not page["events"]:
            break
        seen += [e["id"] for e in page["events"]]
        after = page["next_cursor"]
    assert seen == ids
    typed = json.loads(ctl("events", "--tenant", "acme", "--type", "order.", "--json").stdout)["events"]
    assert [e["payload"]["i"] for e in typed] == [1, 3]
    text = ctl("events", "--tenant", "acme", "--limit", "1").stdout
    assert "continue with --after " in text
    result = ctl("events", "--tenant", "acme", "--after", "nonsense", check=False)
    assert result.returncode == 1 and "is not a cursor of event_feed" in result.stderr
