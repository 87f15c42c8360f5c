"""End to end: KPI snapshots and thresholds (sql/schema/70_providers.sql) written by a running
pgcourierd's maintenance leader. A tenant's success rate drops below its threshold in one minute
(webhooks answered 400) and recovers in a later one (webhooks answered 200): KpiThresholdBreached and
KpiThresholdCleared each appear once in the outbox, and `pgcourierctl kpi` shows the buckets.
Minute buckets are real minutes, so this test takes one to three of them."""
import json

from conftest import wait_for

FAST = {"poll_interval": "100ms", "rescue_interval": "200ms", "maintenance_interval": "200ms"}


def events(db, tenant, event_type):
    return db.value("SELECT count(*) FROM courier.outbox WHERE tenant_id = %s AND event_type = %s", tenant, event_type)


def test_a_kpi_breach_and_its_clearing_appear_once_each_in_the_outbox(db, ctl, receiver, create_subscription,
                                                                        daemon_factory):
    db.query("UPDATE courier.kpi_settings SET settle = '1 second'")
    create_subscription(receiver.url("/status/400"), events="bad.*")
    create_subscription(receiver.url("/ok"), events="good.*")
    other, _ = create_subscription(receiver.url("/status/400"), events="bad.*", tenant="globex")
    threshold = ctl("kpi-threshold", "create", "--tenant", "acme", "--success-rate-below", "0.9").stdout.strip()
    assert threshold.startswith("kpt_"), threshold
    foreign = ctl("kpi-threshold", "create", "--tenant", "acme", "--subscription", other, "--p95-above-ms", "1",
                  check=False)
    assert foreign.returncode == 1 and "is not a subscription of tenant acme" in foreign.stderr, foreign.stderr
    daemon_factory("d1", **FAST)

    for i in range(3):
        db.publish("acme", "bad.thing", json.dumps({"i": i}))
        db.publish("globex", "bad.thing", json.dumps({"i": i}))
    wait_for(lambda: events(db, "acme", "KpiThresholdBreached") == 1, timeout=100, what="the breach (next minute)")
    breach = db.rows("SELECT * FROM courier.outbox WHERE event_type = 'KpiThresholdBreached'")
    assert len(breach) == 1 and breach[0]["subject_id"] == threshold, breach   # globex has no threshold
    assert breach[0]["body"]["observed"] == 0 and breach[0]["body"]["metric"] == "success_rate_below"

    for i in range(3):
        db.publish("acme", "good.thing", json.dumps({"i": i}))
    wait_for(lambda: events(db, "acme", "KpiThresholdCleared") == 1, timeout=150, what="the clearing")
    assert events(db, "acme", "KpiThresholdBreached") == 1
    assert events(db, "acme", "KpiThresholdCleared") == 1
    listed = json.loads(ctl("kpi-threshold", "list", "--tenant", "acme", "--json").stdout)["thresholds"]
    assert [(t["id"], t["state"]) for t in listed] == [(threshold, "ok")]

    shown = json.loads(ctl("kpi", "--tenant", "acme", "--bucket", "1m", "--json").stdout)["buckets"]
    assert sum(b["attempts"] for b in shown) == 6 and sum(b["delivered"] for b in shown) == 3, shown
    assert {b["success_rate"] for b in shown} >= {0.0, 1.0}, shown
    hourly = json.loads(ctl("kpi", "--tenant", "acme", "--bucket", "1h", "--json").stdout)["buckets"]
    assert sum(b["attempts"] for b in hourly) == 6, hourly
    # globex's KPIs are globex's alone
    globex = json.loads(ctl("kpi", "--tenant", "globex", "--json").stdout)["buckets"]
    assert sum(b["attempts"] for b in globex) == 3 and sum(b["delivered"] for b in globex) == 0, globex
    text = ctl("kpi", "--tenant", "acme", "--by-subscription").stdout
    assert "success" in text and "(all)" in text, text
