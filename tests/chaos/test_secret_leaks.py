"""Chaos: secrets never leak. One scenario (module-scoped) creates subscriptions with pgcourierctl, rotates a
signing secret, points them at URLs carrying a password and a query-string token, runs two daemons
(text log at trace level with /metrics, JSON log at debug level) over successes and every kind of
failure, then each test scans one surface for the secrets:

  the whsec_ secrets (created and rotated), their base64 key part (and its hex form), the URL password
  's3cr3tpass', the query token 't0ps3cret', the Basic credentials curl derives from the URL, and the
  master key file's content.
"""
import base64
import os
import subprocess
import uuid
from urllib.parse import urlsplit

import psycopg2
import pytest

from conftest import PGCOURIERCTL, Daemon, policy, wait_for, _yaml
from ops_helpers import metrics_port, scrape
from scripted_receiver import ScriptedReceiver, by_path

PASSWORD, TOKEN = "s3cr3tpass", "t0ps3cret"


def answer(hit):
    """tools/receiver.py's answers by path, with the query string (the token) ignored."""
    path = urlsplit(hit["path"]).path
    if path == "/redirect":
        return 301, {"Location": "/ok"}, 0.0
    return by_path(path)


def _metrics_daemon(db_url, master_key, workdir, name, settings):
    d = Daemon(db_url, master_key, workdir, name, settings)
    with open(d.config_path) as f:
        text = f.read()
    with open(d.config_path, "w") as f:
        f.write(text.replace("metrics_address: ''\n", "metrics_address: '127.0.0.1:0'\n", 1))
    return d


@pytest.fixture(scope="module")
def leak_run(pg_admin_url, tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("secrets"))
    name = "chaos_secrets_" + uuid.uuid4().hex[:10]
    template = os.environ.get("PGCOURIER_TEST_TEMPLATE", "courier_template")
    admin = psycopg2.connect(pg_admin_url)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    admin.close()
    db_url = pg_admin_url.rsplit("/", 1)[0] + "/" + name
    master_key = os.path.join(workdir, "master.key")
    subprocess.check_call([PGCOURIERCTL, "keygen", "--out", master_key], stdout=subprocess.DEVNULL)
    env = {**os.environ, "DATABASE_URL": db_url, "PGCOURIER_MASTER_KEY_FILE": master_key}

    def ctl(*args):
        r = subprocess.run([PGCOURIERCTL, *args], env=env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, f"pgcourierctl {' '.join(args)}: {r.stderr}"
        return r

    receiver = ScriptedReceiver(answer).start()
    daemons = []
    conn = psycopg2.connect(db_url)
    conn.autocommit = True
    try:
        port = receiver.port
        cred = f"user:{PASSWORD}@"
        urls = {
            "failing": f"http://{cred}127.0.0.1:{port}/status/500?token={TOKEN}",
            "ok": f"http://{cred}127.0.0.1:{port}/ok?token={TOKEN}",
            "auth": f"http://{cred}127.0.0.1:{port}/status/401?token={TOKEN}",
            "redirect": f"http://{cred}127.0.0.1:{port}/redirect?token={TOKEN}",
            "timeout": f"http://{cred}127.0.0.1:{port}/hang/3?token={TOKEN}",
            "refused": f"http://{cred}127.0.0.1:1/refused?token={TOKEN}",
            "invalid": f"http://{cred}[127.0.0.1/bad?token={TOKEN}",
        }
        secrets, subs = [], {}
        for kind, url in urls.items():
            # pgcourierctl and the database refuse user:password@ (and the invalid URL): create each with a
            # clean URL, then store the hostile one with the checks off, as a row written before them would be.
            out = ctl("subscription", "create", "--tenant", "acme", "--url", f"http://127.0.0.1:{port}/ok",
                      "--events", "*").stdout
            subs[kind] = next(line.split()[-1] for line in out.splitlines() if line.startswith("created subscription"))
            secrets.append(next(line.split()[-1] for line in out.splitlines() if "signing secret" in line))
            with conn.cursor() as unchecked:
                unchecked.execute("SET session_replication_role = replica")
                unchecked.execute("UPDATE courier.subscriptions SET url = %s WHERE id = %s", (url, subs[kind]))
                unchecked.execute("RESET session_replication_role")
        rotated = ctl("subscription", "rotate-secret", subs["failing"], "--grace", "1h").stdout
        secrets.append(next(line.split()[-1] for line in rotated.splitlines() if line.startswith("signing secret")))
        assert [s for s in secrets if not s.startswith("whsec_")] == [], secrets
        receiver.secrets = list(secrets)

        policies = os.path.join(workdir, "policies.yaml")
        with open(policies, "w") as f:
            f.write(_yaml({"policies": {"default": policy(max_attempts=2, base="100ms", cap="200ms",
                                                          connect="500ms", request="1s")}}) + "\n")
        d1 = _metrics_daemon(db_url, master_key, workdir, "s1",
                             dict(policies_file=policies, log_level="trace", poll_interval="200ms"))
        daemons.append(d1)
        d1.start()
        d2 = Daemon(db_url, master_key, workdir, "s2",
                    dict(policies_file=policies, log_level="debug", log_format="json", poll_interval="200ms"))
        daemons.append(d2)
        d2.start()
        cur = conn.cursor()
        events = []
        for i in range(4):
            cur.execute("SELECT courier.publish('acme', 'order.created', %s::jsonb)", (f'{{"n": {i}}}',))
            events.append(cur.fetchone()[0])

        def unfinished():
            cur.execute("SELECT count(*) FROM courier.delivery_queue")
            return cur.fetchone()[0]
        wait_for(lambda: unfinished() == 0, timeout=30, what="every delivery finished")
        cur.execute("SELECT s.url, d.status, count(*) FROM courier.deliveries d "
                    "JOIN courier.subscriptions s ON s.id = d.subscription_id GROUP BY 1, 2")
        grouped = cur.fetchall()
        by_kind = {kind: {st: n for url, st, n in grouped if url == u} for kind, u in urls.items()}
        cur.execute("SELECT s.url, a.outcome, a.status_code, a.error_summary, count(*) FROM courier.delivery_attempts a "
                    "JOIN courier.deliveries d ON d.id = a.delivery_id "
                    "JOIN courier.subscriptions s ON s.id = d.subscription_id GROUP BY 1, 2, 3, 4")
        attempts = cur.fetchall()
        outcomes_by_kind = {kind: sorted((o, c, e, n) for url, o, c, e, n in attempts if url == u)
                            for kind, u in urls.items()}
        metrics_text = scrape(metrics_port(d1))

        cur.execute("SELECT id FROM courier.deliveries ORDER BY id")
        delivery_ids = [r[0] for r in cur.fetchall()]
        ctl_outputs = {}
        for kind, sub in subs.items():
            r = ctl("subscription", "show", sub)
            ctl_outputs[f"subscription show ({kind})"] = r.stdout + r.stderr
        for args in (["subscription", "list"], ["subscription", "list", "--tenant", "acme"],
                     ["status"], ["status", "--recent", "100"]):
            r = ctl(*args)
            ctl_outputs[" ".join(args)] = r.stdout + r.stderr
        for delivery_id in delivery_ids:
            r = ctl("inspect", delivery_id)
            ctl_outputs[f"inspect {delivery_id}"] = r.stdout + r.stderr

        def rows(sql):
            cur.execute(sql)
            return [r[0] for r in cur.fetchall()]
        db_text = {
            "courier.deliveries": rows("SELECT to_jsonb(t)::text FROM courier.deliveries t"),
            "courier.delivery_attempts": rows("SELECT to_jsonb(t)::text FROM courier.delivery_attempts t"),
            # Every column but url itself (the configuration the operator typed).
            "courier.subscriptions (all columns but url)":
                rows("SELECT (to_jsonb(t) - 'url')::text FROM courier.subscriptions t"),
            "courier.subscription_secrets": rows("SELECT to_jsonb(t)::text FROM courier.subscription_secrets t"),
        }
        for d in daemons:
            d.stop()
        with open(master_key) as f:
            master_text = f.read().strip()
        keys = [s[len("whsec_"):] for s in secrets]
        needles = {**{f"secret {i}": s for i, s in enumerate(secrets)},
                   **{f"key {i} (base64)": k for i, k in enumerate(keys)},
                   **{f"key {i} (hex)": base64.b64decode(k).hex() for i, k in enumerate(keys)},
                   "url password": PASSWORD, "url token": TOKEN,
                   "basic credentials": base64.b64encode(f"user:{PASSWORD}".encode()).decode(),
                   "master key file": master_text}
        sanitizer = [(d.name, line) for d in daemons for line in d.sanitizer_reports()]
        yield {"needles": needles, "logs": {d.name: d.log() for d in daemons}, "metrics": metrics_text,
               "sanitizer": sanitizer,
               "ctl": ctl_outputs, "db": db_text, "by_kind": by_kind, "outcomes": outcomes_by_kind, "receiver": receiver, "events": events,
               "secrets": secrets, "subs": subs}
    finally:
        for d in daemons:
            d.stop()
        receiver.stop()
        conn.close()
        admin = psycopg2.connect(pg_admin_url)
        admin.autocommit = True
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def leaks(needles, text):
    return sorted(label for label, needle in needles.items() if needle and needle in text)


def test_the_scenario_exercised_successes_failures_and_both_secrets(leak_run):
    by_kind = leak_run["by_kind"]
    assert by_kind["ok"] == {"delivered": 4}, by_kind
    assert by_kind["failing"] == {"dead_lettered": 4}, by_kind
    assert by_kind["timeout"] == {"dead_lettered": 4}, by_kind
    assert by_kind["refused"] == {"dead_lettered": 4}, by_kind
    assert by_kind["auth"] == {"failed": 4} and by_kind["redirect"] == {"failed": 4}, by_kind
    assert by_kind["invalid"] == {"failed": 4}, by_kind
    hits = leak_run["receiver"].hits
    assert hits and all(h["verified"] for h in hits), "every request is signed with a known secret"
    # The rotated subscription signs with both secrets during the grace period.
    failing = [h for h in hits if h["path"].startswith("/status/500")]
    assert failing and all(len(h["headers"]["webhook-signature"].split()) == 2 for h in failing)
    assert "pgcourier_attempts_total" in leak_run["metrics"]
    assert not leak_run["sanitizer"], leak_run["sanitizer"]
    assert all(leak_run["logs"].values()), "both daemons logged"
    outcomes = {kind: {o for o, *_ in rows} for kind, rows in leak_run["outcomes"].items()}
    assert outcomes == {"failing": {"http_error"}, "ok": {"delivered"}, "auth": {"http_error"},
                        "redirect": {"redirect"}, "timeout": {"timeout"}, "refused": {"connection_error"},
                        "invalid": {"invalid_url"}}, leak_run["outcomes"]
    # curl sends the URL's user:password as Basic credentials: the secret did reach the wire (where the
    # subscriber asked for it), so its absence elsewhere is meaningful.
    assert any(h["headers"].get("authorization", "").startswith("Basic ") for h in hits)


def test_daemon_logs_contain_no_secret(leak_run):
    found = {name: leaks(leak_run["needles"], text) for name, text in leak_run["logs"].items()}
    assert not any(found.values()), f"secrets in daemon logs: {found}"


def test_delivery_and_attempt_rows_contain_no_secret(leak_run):
    found = {}
    for table in ("courier.deliveries", "courier.delivery_attempts", "courier.subscriptions (all columns but url)"):
        for row in leak_run["db"][table]:
            hit = leaks(leak_run["needles"], row)
            if hit:
                found.setdefault(table, []).append((hit, row[:300]))
    assert not found, f"secrets in rows: {found}"


def test_sealed_secrets_contain_neither_the_secret_nor_its_key(leak_run):
    rows = leak_run["db"]["courier.subscription_secrets"]
    assert len(rows) == len(leak_run["secrets"])
    found = [(leaks(leak_run["needles"], row), row[:200]) for row in rows if leaks(leak_run["needles"], row)]
    assert not found, f"secrets readable in courier.subscription_secrets: {found}"


def test_metrics_contain_no_secret(leak_run):
    assert not leaks(leak_run["needles"], leak_run["metrics"])


@pytest.mark.parametrize("command", ["subscription show", "subscription list", "status", "inspect"])
def test_pgcourierctl_output_contains_no_secret(leak_run, command):
    outputs = {k: v for k, v in leak_run["ctl"].items() if k.startswith(command)}
    assert outputs, f"no output captured for {command}"
    found = {k: leaks(leak_run["needles"], v) for k, v in outputs.items()}
    found = {k: v for k, v in found.items() if v}
    example = next(iter(found), None)
    assert not found, (f"pgcourierctl {command} prints secrets: {found}\n"
                       f"e.g. {example}:\n{outputs[example][:1500] if example else ''}")
