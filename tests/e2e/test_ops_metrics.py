"""End to end, operations: the /metrics endpoint of a running daemon, and that the shipped alerting
rules and Grafana dashboard only use what the daemon exports."""
import json
import os
import re
import signal
import subprocess

from conftest import ROOT, policy, wait_for
from ops_helpers import (exact_sample, family_types, metrics_daemon, metrics_port, parse_samples, probe,
                         publish_together, sample_value, scrape)


def deliver_and_dead_letter(db, receiver, create_subscription, daemon_factory, n_ok=3, n_dead=2):
    """A daemon with /metrics; n_ok events delivered (200) and n_dead dead-lettered after one 500 (the
    'impatient' policy of policies/local.yaml: max_attempts 1). Returns (daemon, port, ok ids, dead ids)."""
    create_subscription(receiver.url("/ok"), events="order.*")
    create_subscription(receiver.url("/status/500"), events="invoice.*", policy="impatient")
    d = metrics_daemon(daemon_factory, "d1", poll_interval="100ms", rescue_interval="200ms",
                       maintenance_interval="200ms")
    port = metrics_port(d)
    ok = publish_together(db, [("acme", "order.created", f'{{"n": {i}}}') for i in range(n_ok)])
    dead = publish_together(db, [("acme", "invoice.created", f'{{"n": {i}}}') for i in range(n_dead)])
    wait_for(lambda: db.statuses() == {"delivered": n_ok, "dead_lettered": n_dead}, timeout=10,
             what="the deliveries to be delivered and dead-lettered")
    return d, port, ok, dead


def test_metrics_endpoint_reports_attempts_outcomes_latency_queue_depth_and_leadership(
        db, receiver, create_subscription, daemon_factory):
    d, port, ok, dead = deliver_and_dead_letter(db, receiver, create_subscription, daemon_factory)

    # The queue depth gauge is refreshed by the maintenance leader every 200 ms.
    wait_for(lambda: sample_value(parse_samples(scrape(port)), "pgcourier_queue_depth", state="dead_lettered") == 2,
             timeout=5, what="pgcourier_queue_depth{state=\"dead_lettered\"} to reach 2")
    text = scrape(port)
    samples = parse_samples(text)
    types = family_types(text)

    assert exact_sample(samples, "pgcourier_attempts_total", outcome="delivered", error_class="") == 3, text
    failed_attempts = [(l, v) for n, l, v in samples
                       if n == "pgcourier_attempts_total" and l.get("outcome") != "delivered"]
    assert sum(v for _, v in failed_attempts) == 2, failed_attempts
    assert all(l.get("error_class") == "transient" for l, _ in failed_attempts), failed_attempts

    assert exact_sample(samples, "pgcourier_deliveries_finished_total", status="delivered") == 3, text
    assert exact_sample(samples, "pgcourier_deliveries_finished_total", status="dead_lettered") == 2, text

    assert types.get("pgcourier_attempt_duration_seconds") == "histogram"
    assert exact_sample(samples, "pgcourier_attempt_duration_seconds_count") == 5
    assert exact_sample(samples, "pgcourier_attempt_duration_seconds_bucket", le="+Inf") == 5
    assert len([1 for n, _, _ in samples if n == "pgcourier_attempt_duration_seconds_bucket"]) > 5
    # Only delivered deliveries observe the publish-to-delivered lag.
    assert exact_sample(samples, "pgcourier_delivery_lag_seconds_count") == 3
    assert exact_sample(samples, "pgcourier_requests_in_flight") == 0
    assert exact_sample(samples, "pgcourier_claim_batch_size_count") >= 1
    assert exact_sample(samples, "pgcourier_claim_batch_size_sum") >= 5  # every delivery was claimed once
    assert exact_sample(samples, "pgcourier_db_statement_duration_seconds_count", statement="claim_due") >= 1
    assert exact_sample(samples, "pgcourier_db_statement_duration_seconds_count", statement="record_outcomes") >= 1
    build = [(l, v) for n, l, v in samples if n == "pgcourier_build_info"]
    assert len(build) == 1 and build[0][1] == 1 and build[0][0].get("version"), build
    assert exact_sample(samples, "pgcourier_config_reloads_total", result="success") == 0
    assert exact_sample(samples, "pgcourier_config_reloads_total", result="failure") == 0
    assert exact_sample(samples, "pgcourier_maintenance_leader") == 1, "a single daemon runs maintenance"
    assert "now runs maintenance" in d.log()
    assert exact_sample(samples, "pgcourier_queue_depth", state="dead_lettered") == 2
    for state in ("due", "scheduled", "held", "delivering"):
        assert exact_sample(samples, "pgcourier_queue_depth", state=state) == 0, state

    # Labels stay low-cardinality: never a delivery, event or subscription id, a URL or a tenant.
    for forbidden in ("dlv_", "evt_", "sub_", "http://", "127.0.0.1:", "acme", "/status/500"):
        assert forbidden not in text, f"{forbidden!r} appears in /metrics"
    for n, labels, _ in samples:
        for value in labels.values():
            assert not any(value.startswith(prefix) for prefix in ("dlv_", "evt_", "sub_")), (n, labels)


# PromQL words that are not metric names: functions, aggregations, keywords.
PROMQL_WORDS = {
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values", "group",
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset",
    "rate", "irate", "increase", "delta", "idelta", "deriv", "histogram_quantile", "abs", "absent", "ceil", "floor",
    "round", "clamp_min", "clamp_max", "time", "vector", "scalar", "label_replace", "label_join", "sort",
    "sort_desc", "avg_over_time", "max_over_time", "min_over_time", "sum_over_time", "count_over_time", "changes",
    "resets", "predict_linear", "absent_over_time", "last_over_time", "inf", "nan",
}


def metric_names_in(expr):
    """The metric names an expression selects: identifiers outside label matchers, grouping clauses,
    range selectors and strings, minus PromQL functions and keywords."""
    stripped = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)          # strings
    stripped = re.sub(r"\{[^}]*\}", "", stripped)                # label matchers
    stripped = re.sub(r"\[[^\]]*\]", "", stripped)               # range selectors
    stripped = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", stripped)
    names = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", stripped))
    names -= PROMQL_WORDS
    return {n for n in names if not re.fullmatch(r"\d+[smhdwy]?", n)}


def exported(name, types):
    if name == "up" or name in types:
        return True
    for suffix in ("_bucket", "_count", "_sum"):
        if name.endswith(suffix) and types.get(name[: -len(suffix)]) == "histogram":
            return True
    return False


def test_alert_rules_pass_promtool_and_dashboards_and_alerts_use_only_exported_metrics(
        db, receiver, create_subscription, daemon_factory):
    rules = os.path.join(ROOT, "docs", "prometheus-alerts.yaml")
    check = subprocess.run(["promtool", "check", "rules", rules], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert re.search(r"SUCCESS: [1-9]\d* rules found", check.stdout + check.stderr), check.stdout + check.stderr

    # What a real daemon exports, after it has delivered and dead-lettered.
    d, port, _, _ = deliver_and_dead_letter(db, receiver, create_subscription, daemon_factory, n_ok=1, n_dead=1)
    wait_for(lambda: sample_value(parse_samples(scrape(port)), "pgcourier_queue_depth", state="dead_lettered") == 1,
             timeout=5, what="the queue depth gauges")
    types = family_types(scrape(port))
    assert types, "no # TYPE lines in /metrics"

    with open(os.path.join(ROOT, "docs", "grafana-dashboard.json")) as f:
        dashboard = json.load(f)
    panels = dashboard["panels"]
    panels += [p for row in dashboard["panels"] for p in row.get("panels", [])]
    exprs = [(f"panel {p.get('id')} '{p.get('title')}'", t["expr"]) for p in panels for t in p.get("targets", [])
             if "expr" in t]
    assert len(exprs) >= 10, exprs

    with open(rules) as f:
        rule_exprs = [(f"alert {a}", e) for a, e in
                      re.findall(r"- alert: (\S+)\s*\n\s*expr: (.+)", f.read())]
    assert len(rule_exprs) >= 6, rule_exprs

    used = {}
    for where, expr in exprs + rule_exprs:
        names = metric_names_in(expr)
        assert names, f"{where}: no metric name found in {expr!r}"
        for name in names:
            used.setdefault(name, []).append(where)
    missing = {name: where for name, where in sorted(used.items()) if not exported(name, types)}
    assert missing == {}, (f"names the dashboard/alerts query but the daemon does not export "
                           f"(exported: {sorted(types)})")


def test_probes_on_the_metrics_address_say_alive_and_ready_and_not_ready_once_draining(
        db, receiver, create_subscription, daemon_factory, write_policies):
    create_subscription(receiver.url("/hang/3"))
    policies = write_policies({"default": policy(request="10s")})
    d = metrics_daemon(daemon_factory, "probed", poll_interval="100ms", shutdown_grace="10s", policies_file=policies)
    port = metrics_port(d)
    assert probe(port, "/healthz") == (200, "alive\n")
    wait_for(lambda: probe(port, "/readyz") == (200, "ready\n"), timeout=5, what="/readyz 200 once connected")
    assert exact_sample(parse_samples(scrape(port)), "pgcourier_ready") == 1
    assert probe(port, "/nothing-here")[0] == 404
    # A request in flight (the receiver answers after 3 s) keeps the daemon draining after SIGTERM:
    # meanwhile it is alive but not ready, so a load balancer or orchestrator stops sending it work.
    db.publish("acme", "order.created", '{"n": 1}')
    wait_for(lambda: db.value("SELECT count(*) FROM courier.delivery_queue WHERE lease_owner IS NOT NULL") == 1,
             timeout=5, what="the delivery in flight")
    d.signal(signal.SIGTERM)
    status, body = wait_for(lambda: (lambda r: r if r[0] == 503 else None)(probe(port, "/readyz")), timeout=5,
                            what="/readyz 503 while draining")
    assert body.startswith("stopping"), body
    assert probe(port, "/healthz")[0] == 200
    assert d.wait(timeout=15) == 0
    assert db.statuses() == {"delivered": 1}
