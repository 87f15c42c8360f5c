"""End to end: NDJSON export (interrupted and continued) and import into a fresh database, delivered by a
running pgcourierd there; dead letters from the command line."""
import json
import os
import subprocess
import uuid

import psycopg2
import pytest

from conftest import PGCOURIERCTL, Database, policy, wait_feed_settled, wait_for

COLUMNS = "id, event_type, payload::text, labels::text, idempotency_key, trace_id, ordering_key, created_at"


@pytest.fixture
def source(pg_admin_url, master_key):
    """A second fresh database (the one exported from) and a pgcourierctl against it."""
    name = "e2e_src_" + uuid.uuid4().hex[:10]
    admin = psycopg2.connect(pg_admin_url)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}" TEMPLATE "{os.environ.get("PGCOURIER_TEST_TEMPLATE", "courier_template")}"')
    url = pg_admin_url.rsplit("/", 1)[0] + "/" + name
    db = Database(url)

    def ctl(*args, check=True):
        env = {**os.environ, "DATABASE_URL": url, "PGCOURIER_MASTER_KEY_FILE": master_key}
        result = subprocess.run([PGCOURIERCTL, *args], env=env, capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            pytest.fail(f"pgcourierctl {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result
    yield db, ctl
    db.close()
    admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def test_an_interrupted_export_continued_and_imported_into_a_fresh_database_gives_the_same_events(
        tmp_path, source, db, ctl, receiver, create_subscription, daemon_factory):
    src, src_ctl = source
    for i in range(25):
        labels = json.dumps({"channel": "web" if i % 2 else "app"})
        src.query("SELECT courier.publish('acme', %s, %s::jsonb, %s, %s, %s, %s::jsonb)",
                  "order.created" if i % 3 else "invoice.sent", json.dumps({"i": i, "text": "caf\u00e9 \"q\"\n"}),
                  f"key-{i}" if i % 4 == 0 else None, None, f"order-{i % 5}", labels)
    src.publish("globex", "order.created", '{"other": "tenant"}')
    wait_feed_settled(src)

    # Interrupted: the first run stops after 10 events, gracefully (its last line is the cursor) ...
    first = tmp_path / "part1.ndjson"
    src_ctl("export", "events", "--tenant", "acme", "--max-rows", "10", "--page-size", "4", "--out", str(first))
    lines = first.read_text().splitlines()
    assert len(lines) == 11 and json.loads(lines[-1]).keys() == {"cursor"}
    # ... a second one is killed in the middle of a line: continue from the cursor of its last full line.
    second = tmp_path / "part2.ndjson"
    src_ctl("export", "events", "--tenant", "acme", "--after", json.loads(lines[-1])["cursor"], "--max-rows", "6",
            "--out", str(second))
    text = second.read_text()
    cut = text[: text.index("\n", text.index("\n") + 1) + 1 + 15]  # two full lines and 15 bytes of the third
    second.write_text(cut)
    full = [line for line in cut.splitlines() if line.endswith("}")]
    last_cursor = json.loads(full[-1])["cursor"]
    third = tmp_path / "part3.ndjson"
    src_ctl("export", "events", "--tenant", "acme", "--after", last_cursor, "--out", str(third))
    assert json.loads(third.read_text().splitlines()[-1])["cursor"]

    # The fresh database has a subscription and a daemon: the imported events are delivered there.
    sub_id, secret = create_subscription(receiver.url("/in"))
    receiver.secrets.append(secret)
    daemon_factory("d1")
    combined = tmp_path / "all.ndjson"
    # The three files one after the other (cat adds no newline: the cut file's last line stays broken).
    combined.write_text(first.read_text() + cut + "\n" + third.read_text())
    report = tmp_path / "rejected.tsv"
    result = ctl("import", "events", "--tenant", "acme", str(combined), "--report", str(report), check=False)
    # The one broken line is reported with its number; everything else is imported.
    assert result.returncode == 1, result
    broken_line = len(first.read_text().splitlines()) + 3
    assert report.read_text().startswith(f"{broken_line}\tnot JSON"), report.read_text()
    assert "imported 25 events" in result.stdout, result.stdout

    assert db.query(f"SELECT {COLUMNS} FROM courier.events ORDER BY id") == \
        src.query(f"SELECT {COLUMNS} FROM courier.events WHERE tenant_id = 'acme' ORDER BY id")
    wait_for(lambda: db.value("SELECT count(*) FROM courier.deliveries WHERE status = 'delivered'") == 25,
             what="every imported event delivered")
    ids = {hit["headers"]["webhook-id"] for hit in receiver.hits_for("/in")}
    assert ids == {r[0] for r in src.query("SELECT id FROM courier.events WHERE tenant_id = 'acme'")}

    # Importing again changes nothing (idempotent by id); so does a line given again from --from-line.
    again = ctl("import", "events", "--tenant", "acme", str(combined), "--from-line", str(broken_line + 1))
    assert "imported 0 events" in again.stdout and again.returncode == 0
    assert db.value("SELECT count(*) FROM courier.events") == 25
    # Another tenant's lines are refused, named.
    other = tmp_path / "other.ndjson"
    src_ctl("export", "events", "--tenant", "globex", "--out", str(other))
    refused = ctl("import", "events", "--tenant", "acme", str(other), check=False)
    assert refused.returncode == 1 and 'the event is of tenant "globex", not acme' in refused.stderr


def test_deliveries_and_dead_letters_export_and_the_dead_letters_commands(
        db, ctl, tmp_path, receiver, create_subscription, daemon_factory, write_policies):
    sub_id, _ = create_subscription(receiver.url("/status/500"))
    daemon_factory("d1", policies_file=write_policies({"default": policy(max_attempts=2, base="50ms", cap="100ms")}))
    events = [db.publish("acme", "order.created", json.dumps({"n": n})) for n in range(3)]
    wait_for(lambda: db.value("SELECT count(*) FROM courier.deliveries WHERE status = 'dead_lettered'") == 3,
             timeout=30, what="three dead letters")
    wait_feed_settled(db)

    listed = json.loads(ctl("dead-letters", "list", "--tenant", "acme", "--json").stdout)
    assert sorted(d["event"]["id"] for d in listed["dead_letters"]) == sorted(events)
    assert {d["subscription_id"] for d in listed["dead_letters"]} == {sub_id}
    page = json.loads(ctl("dead-letters", "list", "--subscription", sub_id, "--limit", "2", "--json").stdout)
    rest = json.loads(ctl("dead-letters", "list", "--subscription", sub_id, "--after", page["next_cursor"],
                          "--json").stdout)
    assert len(page["dead_letters"]) == 2 and len(rest["dead_letters"]) == 1
    text = ctl("dead-letters", "list", "--tenant", "acme").stdout
    assert "DELIVERY" in text and sub_id in text
    assert "no dead letters" in ctl("dead-letters", "list", "--tenant", "nobody").stdout

    dlv = listed["dead_letters"][0]["delivery_id"]
    shown = json.loads(ctl("dead-letters", "show", dlv, "--json").stdout)
    assert shown["event"]["payload"]["n"] in (0, 1, 2) and shown["attempts"] == 2
    assert [a["status_code"] for a in shown["timeline"]] == [500, 500]
    assert "HTTP 500" in (shown["last_error"] or "") or shown["last_status_code"] == 500
    missing = ctl("dead-letters", "show", "dlv_nope", check=False)
    assert missing.returncode == 1 and "no dead letter dlv_nope" in missing.stderr

    out = tmp_path / "dl.ndjson"
    ctl("export", "dead-letters", "--tenant", "acme", "--out", str(out))
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 4 and lines[-1]["cursor"] == lines[-2]["cursor"]
    deliveries = ctl("export", "deliveries", "--tenant", "acme").stdout.splitlines()
    assert [json.loads(line)["status"] for line in deliveries[:-1]] == ["dead_lettered"] * 3
