"""Tenant shards over two real PostgreSQL clusters: pgcourierctl follows the shard map (the tenant's
shard, or --shard), a daemon per shard delivers that shard's work, and a tenant is moved from one shard
to the other (drain, copy, switch) with nothing lost (README: Tenant shards)."""
import io
import os
import subprocess

import psycopg2

from conftest import PGCOURIERCTL, Daemon, Database, wait_for


def run_ctl(master_key, shard_map, *args, check=True):
    env = {**os.environ, "PGCOURIER_MASTER_KEY_FILE": master_key, "PGCOURIER_SHARD_MAP": shard_map}
    env.pop("DATABASE_URL", None)
    out = subprocess.run([PGCOURIERCTL, *args], env=env, capture_output=True, text=True, timeout=60)
    if check:
        assert out.returncode == 0, f"pgcourierctl {' '.join(args)}: {out.stderr}"
    return out


def write_map(path, one, two, tenants, default=None):
    lines = ["shards:", f"  one: '{one}'", f"  two: '{two}'"]
    if default:
        lines.append(f"default: {default}")
    lines.append("tenants:")
    lines += [f"  {t}: {s}" for t, s in tenants.items()]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def subscribe(master_key, shard_map, tenant, url):
    out = run_ctl(master_key, shard_map, "subscription", "create", "--tenant", tenant, "--url", url,
                  "--events", "*").stdout
    return next(line.split()[-1] for line in out.splitlines() if line.startswith("created subscription"))


def test_ctl_and_daemons_follow_the_shard_map_and_a_tenant_moves_between_shards(
        db, db_url, second_cluster, master_key, make_receiver, tmp_path):
    two = Database(second_cluster)
    daemons = []
    try:
        shard_map = write_map(tmp_path / "shards.yaml", db_url, second_cluster, {"acme": "one", "globex": "two"})
        acme_rx, globex_rx = make_receiver(), make_receiver()
        acme_sub = subscribe(master_key, shard_map, "acme", acme_rx.url("/ok"))
        globex_sub = subscribe(master_key, shard_map, "globex", globex_rx.url("/ok"))
        # Each subscription went to its tenant's shard, and only there.
        assert db.value("SELECT tenant_id FROM courier.subscriptions") == "acme"
        assert two.value("SELECT tenant_id FROM courier.subscriptions") == "globex"
        assert run_ctl(master_key, shard_map, "shard", "list", "--tenant", "globex").stdout.split("\t")[0] == "two"

        settings = dict(poll_interval="200ms", rescue_interval="200ms")
        for name, url in (("shard-one", db_url), ("shard-two", second_cluster)):
            d = Daemon(url, master_key, str(tmp_path), name, dict(settings))
            daemons.append(d.start())
        acme_events = [db.publish("acme", "order.created", f'{{"n": {i}}}') for i in range(20)]
        globex_events = [two.publish("globex", "order.created", f'{{"n": {i}}}') for i in range(20)]
        wait_for(lambda: len(acme_rx.hits) == 20 and len(globex_rx.hits) == 20, timeout=20,
                 what="each shard's daemon delivering its tenant's events")
        assert sorted(h["headers"]["webhook-id"] for h in acme_rx.hits) == sorted(acme_events)
        assert sorted(h["headers"]["webhook-id"] for h in globex_rx.hits) == sorted(globex_events)

        # Commands without a tenant need --shard; status of shard two sees only globex.
        out = run_ctl(master_key, shard_map, "status", check=False)
        assert out.returncode == 1 and "--shard NAME" in out.stderr, out.stderr
        status = run_ctl(master_key, shard_map, "--shard", "two", "subscription", "list").stdout
        assert globex_sub in status and acme_sub not in status

        # Moving globex from shard two to shard one: drain (pause: its new deliveries wait), copy its
        # subscriptions, secrets and waiting work, switch the map, resume on the new shard.
        run_ctl(master_key, shard_map, "subscription", "pause", globex_sub, "--shard", "two")
        waiting = [two.publish("globex", "order.created", f'{{"late": {i}}}') for i in range(5)]
        wait_for(lambda: two.value("SELECT count(*) FROM courier.delivery_queue WHERE lease_owner IS NOT NULL") == 0,
                 timeout=10, what="nothing of globex in flight on shard two")
        copy_tenant(second_cluster, db_url, "globex")
        shard_map = write_map(tmp_path / "shards.yaml", db_url, second_cluster, {"acme": "one", "globex": "one"})
        resumed = run_ctl(master_key, shard_map, "--shard", "one", "subscription", "resume", globex_sub)
        assert "released 5 held deliveries" in resumed.stdout, resumed.stdout
        wait_for(lambda: len(globex_rx.hits) == 25, timeout=20, what="globex's waiting events delivered from shard one")
        assert sorted(h["headers"]["webhook-id"] for h in globex_rx.hits[20:]) == sorted(waiting)
        # The copied secret signs as before (the same master key on both shards): the receiver's check passed,
        # and shard one now holds globex's subscription while acme's is untouched.
        assert db.value("SELECT count(*) FROM courier.subscriptions WHERE tenant_id = 'globex'") == 1
        assert len(acme_rx.hits) == 20
    finally:
        for d in daemons:
            d.stop()
        two.close()


def copy_tenant(source_url, target_url, tenant):
    """The copy step of a move, as docs/shards.md writes it with psql \\copy: the tenant's subscriptions,
    their secrets, and its unfinished events and deliveries (their queue rows follow by trigger), in COPY's
    text format (exact: 'infinity' stays infinity); then the source forgets the moved work."""
    unfinished = "status NOT IN ('delivered', 'failed', 'dead_lettered')"
    steps = [
        ("courier.subscriptions", f"SELECT * FROM courier.subscriptions WHERE tenant_id = '{tenant}'"),
        ("courier.subscription_secrets", "SELECT x.* FROM courier.subscription_secrets x JOIN courier.subscriptions s "
                                         f"ON s.id = x.subscription_id WHERE s.tenant_id = '{tenant}'"),
        ("courier.events", f"SELECT * FROM courier.events WHERE tenant_id = '{tenant}' AND id IN "
                           f"(SELECT event_id FROM courier.deliveries WHERE tenant_id = '{tenant}' AND {unfinished})"),
        ("courier.deliveries", f"SELECT * FROM courier.deliveries WHERE tenant_id = '{tenant}' AND {unfinished}"),
    ]
    src, dst = psycopg2.connect(source_url), psycopg2.connect(target_url)
    try:
        for table, select in steps:
            data = io.StringIO()
            with src.cursor() as cur:
                cur.copy_expert(f"COPY ({select}) TO STDOUT", data)
            data.seek(0)
            with dst.cursor() as cur:
                # The events arrive with their deliveries: no fan-out of their own on the new shard.
                cur.execute("SET session_replication_role = " + ("replica" if table == "courier.events" else "DEFAULT"))
                cur.copy_expert(f"COPY {table} FROM STDIN", data)
                cur.execute("RESET session_replication_role")
        dst.commit()
        with src.cursor() as cur:
            cur.execute("SELECT courier.remove_deliveries(array_agg(id)) FROM courier.deliveries "
                        f"WHERE tenant_id = %s AND {unfinished}", (tenant,))
        src.commit()
    finally:
        src.close()
        dst.close()


def test_a_shard_map_that_is_wrong_is_refused_with_the_file_and_key(tmp_path, master_key, db_url):
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"shards:\n  one: '{db_url}'\ndefault: nowhere\ntenants:\n  acme: three\n")
    out = run_ctl(master_key, str(bad), "subscription", "list", "--shard", "one", check=False)
    assert out.returncode == 1
    assert "default: no shard named 'nowhere'" in out.stderr, out.stderr
    assert "tenants.acme: no shard named 'three'" in out.stderr, out.stderr
    good = write_map(tmp_path / "good.yaml", db_url, db_url, {"acme": "one"})
    out = run_ctl(master_key, good, "subscription", "list", "--tenant", "nobody", check=False)
    assert out.returncode == 1 and "tenant 'nobody' is in no shard" in out.stderr, out.stderr
    out = run_ctl(master_key, good, "--database-url", db_url, "status", check=False)
    assert out.returncode == 1 and "give one of them" in out.stderr, out.stderr
