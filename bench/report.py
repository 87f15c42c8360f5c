#!/usr/bin/env python3
"""The table, the targets (of issues 6, 15 and 17) and bench/results.json, from bench/run.

  bench/report.py RESULTS_TXT OUT_JSON T0 V_DAEMON V_PG V_NGINX V_CURL V_WRK COMMIT DIRTY SETTINGS

RESULTS_TXT has one line per scenario: the name, then tab-separated key=value
pairs (see `record` in bench/run). Scenarios that did not run are left out of
the table and their targets are reported as "not measured". Exits 1 when a
correctness check failed (lost or duplicated deliveries, a receiver count
that does not match, a healthy tenant's events not arrived in the time the
scenario allows, an export that imports as other events than it read), never
because a performance target was missed.

The machine limit is 1 / (1/DB + 1/HTTP): the DB limit (pgbench) and the
HTTP limit (wrk) are each measured alone on the same two cores, and a
delivery needs both, so together they allow at most that rate.
"""
import datetime
import json
import os
import platform
import sys
import time


def load(path):
    rows = {}
    for line in open(path):
        scen, *kv = line.rstrip("\n").split("\t")
        rows[scen] = {k: v for k, v in (x.split("=", 1) for x in kv)}
    return rows


def with_missing(sorted_values, missing):
    """Latencies of the events that arrived plus +inf for each that did not: percentiles over every event."""
    return sorted_values + [float("inf")] * missing


def ms(v):
    return None if v is None or v == float("inf") else v


def latency_summary(from_commit, published, arrived):
    """p50/p99/max over all published events (an event that never arrived counts as infinitely late)."""
    allv = with_missing(from_commit, published - arrived)
    return {"p50": ms(percentile(allv, 50)), "p99": ms(percentile(allv, 99)), "max": ms(allv[-1]) if allv else None,
            "p99_arrived_only": percentile(from_commit, 99), "max_arrived_only": from_commit[-1] if from_commit else None}


def fmt_ms(v):
    return "not arrived" if v is None else (f"{v / 1000:,.1f} s" if v >= 1000 else f"{v:.1f} ms")


def latency_by_second(published_path, arrivals_path):
    """[(second of publication from the first event, events, max latency ms or None if one never arrived)]."""
    sent = {}
    for line in open(published_path):
        event_id, _, after = line.split()
        sent[event_id] = int(after)
    got = {}
    for line in open(arrivals_path):
        parts = line.split()
        if len(parts) == 2 and parts[1] in sent and parts[1] not in got:
            got[parts[1]] = int(parts[0])
    if not sent:
        return []
    t0 = min(sent.values())
    out = {}
    for event_id, after in sent.items():
        sec = (after - t0) // 1_000_000
        n, worst = out.get(sec, (0, 0.0))
        lat = (got[event_id] - after) / 1000 if event_id in got else float("inf")
        out[sec] = (n + 1, max(worst, lat))
    return [(sec, n, ms(worst)) for sec, (n, worst) in sorted(out.items())]


def counter_at(samples, t):
    """The cumulative columns of the sampled metrics at time t, interpolated linearly."""
    if t <= samples[0][0]:
        return samples[0][1:]
    for a, b in zip(samples, samples[1:]):
        if a[0] <= t <= b[0]:
            w = (t - a[0]) / (b[0] - a[0]) if b[0] > a[0] else 0
            return [x + w * (y - x) for x, y in zip(a[1:], b[1:])]
    return samples[-1][1:]


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    k = min(len(sorted_values) - 1, max(0, int(round(p / 100 * (len(sorted_values) - 1)))))
    return sorted_values[k]


def latencies(published_path, arrivals_path):
    """Milliseconds from the publisher's clock to the receiver's, per event."""
    sent = {}
    for line in open(published_path):
        event_id, before, after = line.split()
        sent[event_id] = (int(before), int(after))
    from_call, from_commit, seen, duplicates = [], [], set(), 0
    for line in open(arrivals_path):
        parts = line.split()
        if len(parts) != 2 or parts[1] not in sent:
            continue
        if parts[1] in seen:
            duplicates += 1
            continue
        seen.add(parts[1])
        before, after = sent[parts[1]]
        from_call.append((int(parts[0]) - before) / 1000)
        from_commit.append((int(parts[0]) - after) / 1000)
    return sorted(from_call), sorted(from_commit), len(sent), len(seen), duplicates


def main():
    (path, out, t0, v_daemon, v_pg, v_nginx, v_curl, v_wrk, commit, dirty, settings_text) = sys.argv[1:]
    settings = {k: float(v) if "." in v else int(v) for k, v in (x.split("=", 1) for x in settings_text.split())}
    rows = load(path)
    f = lambda d, k: float(d[k])  # noqa: E731
    scenarios, problems = [], []

    db_rate = http_rate = None
    if "db" in rows:
        db = rows["db"]
        secs = f(db, "end") - f(db, "start")
        n = int(db["deliveries"])
        db_rate = n / secs
        scenarios.append({
            "scenario": "DB limit (pgbench)", "deliveries": n, "seconds": secs, "deliveries_per_s": db_rate,
            "pg_cpu_s_per_1k": (f(db, "pg_cpu1") - f(db, "pg_cpu0")) / n * 1000,
            "txn_per_delivery": int(db["xacts"]) / n, "commits_per_s": int(db["xacts"]) / secs,
            "pgbench_tps": float(db["pgbench_tps"]), "queue_left": int(db["queue_left"]),
            "others_cpu_pct": int(db["others_cpu_pct"]) if "others_cpu_pct" in db else None,
        })
        if int(db["queue_left"]) == 0:
            print("WARNING: the DB-limit queue ran dry: the DB limit is a lower bound")
    if "http" in rows:
        h = rows["http"]
        http_rate = f(h, "rate")
        scenarios.append({"scenario": "HTTP limit (wrk)", "deliveries": int(h["deliveries"]), "seconds": f(h, "seconds"),
                          "deliveries_per_s": http_rate, "non_2xx": int(h["non2xx"]), "body_bytes": int(h["body_bytes"]),
                          "others_cpu_pct": int(h["others_cpu_pct"]) if "others_cpu_pct" in h else None})

    machine_rate = 1 / (1 / db_rate + 1 / http_rate) if db_rate and http_rate else None
    if machine_rate:
        scenarios.append({"scenario": "machine limit (DB+HTTP)", "deliveries_per_s": machine_rate,
                          "formula": "1 / (1/DB limit + 1/HTTP limit)"})

    def daemon_row(key, label, **extra):
        r = rows[key]
        n = int(r["deliveries"])
        secs = f(r, "end") - f(r, "start")
        attempts = int(r["attempts"])
        row = {
            "scenario": label, "deliveries": n, "seconds": secs, "deliveries_per_s": n / secs,
            "attempts": attempts, "attempts_per_s": attempts / secs,
            "daemon_cpu_s_per_1k": f(r, "daemon_cpu") / n * 1000,
            "daemon_cpu_us_per_attempt": f(r, "daemon_cpu") / attempts * 1e6,
            "pg_cpu_s_per_1k": (f(r, "pg_cpu1") - f(r, "pg_cpu0")) / n * 1000,
            "txn_per_delivery": int(r["xacts"]) / n, "peak_rss_mib": int(r["rss_kib"]) / 1024,
            "receiver_hits": int(r["hits"]), "rows": int(r["rows"]),
            "commits_per_s": int(r["xacts"]) / secs, "daemon_cpu_s": f(r, "daemon_cpu"),
            "pg_cpu_s": f(r, "pg_cpu1") - f(r, "pg_cpu0"),
        }
        if "nginx_cpu" in r:
            row["nginx_cpu_s"] = f(r, "nginx_cpu")
        if "others_cpu_pct" in r:
            row["others_cpu_pct"] = int(r["others_cpu_pct"])
        if "nginx_cpu" in r:  # the receiver is nginx: every process of the delivery is measured
            row["all_cpu_us_per_delivery"] = (row["daemon_cpu_s"] + row["pg_cpu_s"] + row["nginx_cpu_s"]) / n * 1e6
        row.update(extra)
        if row["receiver_hits"] != n or row["rows"] != n:
            problems.append(f"{label}: receiver counted {row['receiver_hits']}, {row['rows']} rows delivered, expected {n}")
        return row

    for key, label in (("drain", "drain (1 sub)"), ("fanout", f"fan-out ({settings['fanout_subscriptions']} subs)"),
                       ("filters_plain", f"filters: {settings.get('filter_subscriptions', 10)} subs, none"),
                       ("filters_all", f"filters: {settings.get('filter_subscriptions', 10)} subs, all")):
        if key in rows:
            row = daemon_row(key, label, run=key)
            if row["attempts"] != row["deliveries"]:
                problems.append(f"{label}: {row['attempts']} attempts for {row['deliveries']} deliveries (duplicates)")
            scenarios.append(row)
    for conc in (64, 256, 1024):
        key = f"slow_{conc}"
        if key in rows:
            bound = conc / 0.050
            row = daemon_row(key, f"slow 50 ms, {conc} in flight", in_flight=conc, littles_law_bound_per_s=bound)
            row["pct_of_bound"] = 100 * row["deliveries_per_s"] / bound
            scenarios.append(row)
    latency = None
    if "latency" in rows:
        r = rows["latency"]
        from_call, from_commit, published, arrived, dup = latencies(r["published"], r["arrivals"])
        row = daemon_row("latency", f"latency at {r['rate']}/s")
        latency = {
            "published": published, "arrived": arrived, "duplicate_arrivals": dup,
            "from_commit_ms": {"p50": percentile(from_commit, 50), "p99": percentile(from_commit, 99),
                               "max": from_commit[-1] if from_commit else None},
            "from_publish_call_ms": {"p50": percentile(from_call, 50), "p99": percentile(from_call, 99),
                                     "max": from_call[-1] if from_call else None},
        }
        row["latency"] = latency
        if arrived != published or dup:
            problems.append(f"latency: {published} published, {arrived} arrived, {dup} duplicate arrivals")
        scenarios.append(row)
    failure_rows = {}
    for key, label in (("failures_0", "failures 0% (baseline)"), ("failures_50", "failures 50% 500")):
        if key in rows:
            failure_rows[key] = daemon_row(key, label)
            scenarios.append(failure_rows[key])
    if "failures_0" in failure_rows and failure_rows["failures_0"]["attempts"] != failure_rows["failures_0"]["deliveries"]:
        problems.append("failures 0%: more attempts than deliveries (duplicates)")
    health = None
    if "health" in rows:
        r = rows["health"]
        series = []
        for point in r["series"].split(","):
            if point:
                t, claim, table, idx, nrows, delivered = (int(x) for x in point.split(":"))
                if series and series[-1]["second"] == t:
                    series.pop()  # two samples in the same second: keep the later one
                series.append({"second": t, "claim_indexes_kib": claim // 1024, "table_kib": table // 1024,
                               "all_indexes_kib": idx // 1024, "rows": nrows, "delivered": delivered})
        half = [p for p in series if p["second"] >= series[-1]["second"] / 2]
        mid = half[0]["claim_indexes_kib"] if half else None
        health = {"seconds": int(r["seconds"]), "queued": int(r["queued"]), "delivered": int(r["delivered"]),
                  "series": series, "peak_rss_mib": int(r["rss_kib"]) / 1024, "daemon_log_error_lines": int(r["log_errors"]),
                  "claim_indexes_kib_half_way": mid, "claim_indexes_kib_end": series[-1]["claim_indexes_kib"]}
    peers = []  # graphile-worker first, then pg-boss
    for key in ("peers", "peers_pgboss"):
        if key not in rows:
            continue
        r = rows[key]
        if "skipped" in r:
            peers.append({"row": key, "skipped": r["skipped"]})
            continue
        n = int(r["deliveries"])
        secs = f(r, "end") - f(r, "start")
        cn = int(r.get("cpu_jobs", n)) or n  # the jobs done while the CPU was counted (from the first request on)
        peer = {"row": key, "name": r["name"], "node": r["node"], "config": r["config"], "jobs": n, "seconds": secs,
                "per_s": n / secs, "worker_cpu_s_per_1k": f(r, "worker_cpu") / cn * 1000,
                "pg_cpu_s_per_1k": (f(r, "pg_cpu1") - f(r, "pg_cpu0")) / cn * 1000, "receiver_hits": int(r["hits"]),
                "cpu_counted_for_jobs": cn,
                "configurations_tried": r.get("tried")}
        peers.append(peer)
        if int(r["hits"]) != n:
            problems.append(f"{key}: receiver counted {r['hits']} for {n} jobs")
        if r.get("all_hits_ok", "1") != "1":
            problems.append(f"{key}: in one of the configurations tried the receiver count did not match the jobs")
        name, version = r["name"].rsplit(" ", 1)
        peer["others_cpu_pct"] = int(r["others_cpu_pct"]) if "others_cpu_pct" in r else None
        if "nginx_cpu" in r:
            peer["all_cpu_us_per_delivery"] = (f(r, "worker_cpu") + f(r, "pg_cpu1") - f(r, "pg_cpu0") + f(r, "nginx_cpu")) / cn * 1e6
        scenarios.append({"scenario": f"{name} {version}", "deliveries": n, "seconds": secs, "deliveries_per_s": n / secs,
                          "daemon_cpu_s_per_1k": peer["worker_cpu_s_per_1k"], "pg_cpu_s_per_1k": peer["pg_cpu_s_per_1k"],
                          "others_cpu_pct": peer["others_cpu_pct"],
                          "all_cpu_us_per_delivery": peer.get("all_cpu_us_per_delivery")})
    for s in scenarios:
        if db_rate:
            s["pct_db_limit"] = 100 * s["deliveries_per_s"] / db_rate
        if http_rate:
            s["pct_http_limit"] = 100 * s["deliveries_per_s"] / http_rate
        if machine_rate:
            s["pct_machine_limit"] = 100 * s["deliveries_per_s"] / machine_rate

    # ------------------------------------------------------------ issue 15 scenarios
    noisy = None
    if "noisy" in rows:
        r = rows["noisy"]
        from_call, from_commit, published, arrived, dup = latencies(r["published"], r["arrivals"])
        a_counts = {k: int(v) for k, v in (x.split(":") for x in r["a_status"].split(",") if x)}
        noisy = {
            "tenant_b": {"published": published, "arrived": arrived, "duplicate_arrivals": dup,
                         "rate_per_s": int(r["rate"]), "seconds": int(r["seconds"]),
                         "from_commit_ms": latency_summary(from_commit, published, arrived),
                         "max_ms_by_second_published": latency_by_second(r["published"], r["arrivals"]),
                         "statuses_at_end": r["b_status"]},
            "tenant_a": {"subscriptions": int(r["a_subscriptions"]), "deliveries": int(r["a_deliveries"]),
                         "statuses_at_end": a_counts, "silent_endpoints": json.loads(r["silent"]),
                         "connections_open_2s_after_start": int(r["a_open_at_start"])},
            "grace_s": int(r["grace"]), "waited_after_publisher_s": int(r["waited_after_publish"]),
            "daemon_alive": r["daemon_alive"] == "1", "daemon_cpu_s": float(r["daemon_cpu"]),
            "peak_rss_mib": int(r["rss_kib"] or 0) / 1024, "others_cpu_pct": int(r.get("others_cpu_pct", -1)),
        }
        if arrived != published:
            problems.append(f"noisy: tenant B: {arrived} of {published} events arrived within {r['grace']} s after "
                            f"the publisher ended (statuses at the end: {r['b_status']})")
        if dup:
            problems.append(f"noisy: tenant B: {dup} duplicate arrivals")
        if sum(a_counts.values()) != int(r["a_deliveries"]):
            problems.append(f"noisy: tenant A: {sum(a_counts.values())} delivery rows, expected {r['a_deliveries']}")
        if r["daemon_alive"] != "1":
            problems.append("noisy: pgcourierd exited during the scenario")
    memory = None
    if "memory" in rows:
        r = rows["memory"]
        from_call, from_commit, published, arrived, dup = latencies(r["published"], r["arrivals"])
        big_counts = {k: int(v) for k, v in (x.split(":") for x in r["big_status"].split(",") if x)}
        accepted = int(r["big_events"]) - int(r["refused"])
        rss_series = []
        for line in open(r["rss_series"]):
            parts = line.split()
            if len(parts) == 2:
                rss_series.append((float(parts[0]) - float(r["start"]), int(parts[1]) // 1024))
        peak = max(int(r["rss_kib"] or 0), int(r["rss_sampled_max_kib"] or 0)) / 1024
        lat = latency_summary(from_commit, published, arrived)
        memory = {
            "big_events": int(r["big_events"]), "big_mb": int(r["big_mb"]), "refused_at_publish": int(r["refused"]),
            "big_insert_s": float(r["big_insert_s"]),
            "big_statuses_at_end": big_counts, "big_last_error": r["big_error"],
            "daemon_alive": r["daemon_alive"] == "1", "daemon_exit_code": r["exit_code"],
            "peak_rss_mib": peak, "vmhwm_mib": int(r["rss_kib"] or 0) / 1024,
            "others_cpu_pct": int(r.get("others_cpu_pct", -1)),
            "rss_mib_every_0_5s": [(round(t, 1), m) for i, (t, m) in enumerate(rss_series) if i % 5 == 0],
            "other_tenant": {"published": published, "arrived": arrived, "duplicate_arrivals": dup,
                             "rate_per_s": int(r["rate"]), "from_commit_ms": lat,
                             "max_ms_by_second_published": latency_by_second(r["published"], r["arrivals"])},
        }
        memory["others_continue"] = arrived == published and not dup and lat["max"] is not None and lat["max"] < 1000
        if arrived != published:
            problems.append(f"memory: the other tenant: {arrived} of {published} events arrived")
        if dup:
            problems.append(f"memory: the other tenant: {dup} duplicate arrivals")
        if sum(big_counts.values()) != accepted:
            problems.append(f"memory: {sum(big_counts.values())} delivery rows for the {accepted} big events accepted")
    rescue = None
    if "rescue" in rows:
        r = rows["rescue"]
        n = int(r["deliveries"])
        counts = {k: int(v) for k, v in (x.split(":") for x in r["status"].split(",") if x)}
        ids = [line.split()[1] for line in open(r["arrivals"]) if len(line.split()) == 2]
        last = float(r["last_delivered"])
        first = float(r["first_resent"])
        rescue = {
            "deliveries": n, "sent_by_daemon_1_before_kill": int(r["sent_before_kill"]),
            "leased_to_daemon_1_at_kill": int(r["leased_before_kill"]),
            "lease_left_at_kill_s": float(r["lease_left_at_kill"] or 0),
            "claim_to_kill_s": float(r["t_kill"]) - float(r["t_start"]),
            "kill_to_first_resent_s": first - float(r["t_kill"]) if first else None,
            "kill_to_last_delivered_s": last - float(r["t_kill"]) if counts.get("delivered") == n else None,
            "statuses_at_end": counts, "attempt_rows": int(r["attempts"]), "delivered_by_daemon_2": int(r["delivered_by_2"]),
            "arrivals_after_kill": len(ids), "distinct_after_kill": len(set(ids)), "waited_at_most_s": int(r["wait"]),
            "others_cpu_pct": int(r.get("others_cpu_pct", -1)),
        }
        if counts.get("delivered") != n:
            problems.append(f"rescue: {counts} after {r['wait']} s, expected {n} delivered")
        if len(set(ids)) != n or len(ids) != len(set(ids)):
            problems.append(f"rescue: after the kill the receiver got {len(ids)} requests for {len(set(ids))} "
                            f"distinct webhooks, expected {n} once each")
    xmin = None
    if "xmin" in rows:
        r = rows["xmin"]
        samples = []
        for line in open(r["metrics"]):
            v = [float(x) for x in line.split()]
            if len(v) >= 9:
                samples.append(v)
        h0, h1 = float(r["hold_start"]), float(r["hold_end"])
        end = samples[-1][0] if samples else h1

        def window(a, b):
            x, y = counter_at(samples, a), counter_at(samples, b)
            claims = y[2] - x[2]
            outs = y[4] - x[4]
            return {"from_s": round(a - h0, 1), "to_s": round(b - h0, 1), "deliveries_per_s": (y[0] - x[0]) / (b - a),
                    "claim_ms": 1000 * (y[1] - x[1]) / claims if claims > 0 else None,
                    "rows_per_claim": (y[5] - x[5]) / claims if claims > 0 else None,
                    "record_outcomes_ms": 1000 * (y[3] - x[3]) / outs if outs > 0 else None}
        # 10 s windows: back from the start of the hold, on from its start while it lasts, on from its end.
        windows = []
        if len(samples) > 2:
            a = h0
            while a - 10 >= samples[0][0] - 0.01:
                a -= 10
            for phase, lo, hi in (("before", a, h0), ("during", h0, h1), ("after", h1, end)):
                a = lo
                while a + 10 <= hi + 0.01:
                    w = window(a, a + 10)
                    w["phase"] = phase
                    windows.append(w)
                    a += 10
        before = [w["deliveries_per_s"] for w in windows if w["phase"] == "before"]
        during = [w["deliveries_per_s"] for w in windows if w["phase"] == "during"]
        before_rate = sum(before) / len(before) if before else None
        recovery = None
        if before_rate and samples:
            a = h1
            while a + 10 <= end + 0.01:
                if window(a, a + 10)["deliveries_per_s"] >= 0.9 * before_rate:
                    recovery = a - h1
                    break
                a += 1
        sizes = []
        for point in r["series"].split(","):
            if point:
                t, claim, dead, nrows = point.split(":")
                sizes.append({"second": round(float(t) - h0, 1), "claim_indexes_kib": int(claim) // 1024,
                              "dead_tuples": int(dead or 0), "rows": int(nrows)})
        xmin = {"held_s": h1 - h0, "before_s": float(r["before"]), "after_s": float(r["after"]),
                "before_rate_per_s": before_rate,
                "during_min_rate_per_s": min(during) if during else None,
                "during_mean_rate_per_s": sum(during) / len(during) if during else None,
                "recovery_s": recovery, "windows": windows, "sizes_every_10s": sizes,
                "queued": int(r["queued"]), "delivered": int(r["delivered"]), "peak_rss_mib": int(r["rss_kib"] or 0) / 1024,
                "daemon_log_error_lines": int(r["log_errors"]), "holder_error": r.get("holder_error", ""),
                "others_cpu_pct": int(r.get("others_cpu_pct", -1)),
                "producer_polls": int(r.get("polls", 0)), "producer_polls_under_1000_waiting": int(r.get("low_polls", 0))}
        if xmin["producer_polls_under_1000_waiting"]:
            problems.append(f"xmin: fewer than 1,000 deliveries waited at {xmin['producer_polls_under_1000_waiting']} of "
                            f"{xmin['producer_polls']} polls: the producer fell behind, so the windows there are a "
                            f"lower bound of the drain's rate")
        if r.get("holder_error", "").strip():
            problems.append(f"xmin: the snapshot-holding session failed: {r['holder_error']}")

    # ------------------------------------------------------------ issue 17 scenarios
    filters = None
    pub_keys = sorted((k for k in rows if k.startswith("filters_pub_")), key=lambda k: int(k.rsplit("_", 1)[1]))
    if pub_keys or any(k in rows for k in ("filters_plain", "filters_all")):
        publish = []
        for key in pub_keys:
            r = rows[key]
            secs, events, subs = f(r, "end") - f(r, "start"), int(r["events"]), int(r["subscriptions"])
            p = {"variant": r["variant"], "filter": None if r["filter"] == "NULL" else r["filter"].strip("'"),
                 "subscriptions": subs, "events": events, "seconds": secs,
                 "publish_per_s": events / secs if secs > 0 else None,
                 "pg_cpu_us_per_event": (f(r, "pg_cpu1") - f(r, "pg_cpu0")) / events * 1e6 if events else None,
                 "txn_per_event": int(r["xacts"]) / events if events else None,
                 "deliveries_per_event": int(r["deliveries"]) / events if events else None,
                 "pgbench_tps": float(r["pgbench_tps"] or 0), "others_cpu_pct": int(r.get("others_cpu_pct", -1))}
            publish.append(p)
            if not events:
                problems.append(f"filters: {r['variant']}: nothing published")
            elif r["variant"] in ("plain", "all") and int(r["deliveries"]) != events * subs:
                problems.append(f"filters: {r['variant']}: {r['deliveries']} deliveries for {events} events and {subs} "
                                "subscriptions that every event matches")

        def median(variant, key):
            v = sorted(p[key] for p in publish if p["variant"] == variant and p[key] is not None)
            return (v[(len(v) - 1) // 2] + v[len(v) // 2]) / 2 if v else None
        inserts = {}
        for variant in ("plain", "all"):
            r = rows.get(f"filters_insert_{variant}")
            if r:
                secs, events = f(r, "end") - f(r, "start"), int(r["events"])
                inserts[variant] = {"events": events, "deliveries": int(r["deliveries"]), "seconds": secs,
                                    "events_per_s": events / secs,
                                    "pg_cpu_us_per_event": (f(r, "pg_cpu1") - f(r, "pg_cpu0")) / events * 1e6,
                                    "others_cpu_pct": int(r.get("others_cpu_pct", -1))}
        evaluation = None
        if "filters_eval" in rows:
            times = [float(t) for t in rows["filters_eval"]["times_ms"].split()]
            n = int(rows["filters_eval"]["rows"])
            if len(times) >= 2:
                base, with_filter = min(times[0::2]), min(times[1::2])
                evaluation = {"rows": n, "count_ms": base, "count_with_filter_ms": with_filter,
                              "us_per_evaluation": (with_filter - base) * 1000 / n}
        filters = {"publish": publish, "bulk_insert": inserts, "predicate_alone": evaluation,
                   "median_publish_per_s": {v: median(v, "publish_per_s") for v in ("plain", "all", "half")},
                   "median_pg_cpu_us_per_event": {v: median(v, "pg_cpu_us_per_event") for v in ("plain", "all", "half")}}
    transfer = None

    def transfer_side(r, n_rows):
        """One direction of the export scenario: rate, CPU, peak RSS, and RSS and rate by tenth of the file."""
        secs = f(r, "seconds")
        total = int(r["bytes"]) or 1
        samples = []
        for line in open(r["series"]):
            parts = line.split()
            if len(parts) == 3:
                samples.append((float(parts[0]), int(parts[1]), int(parts[2])))
        t_start = samples[0][0] if samples else 0.0
        by_tenth, prev_t = [], t_start
        for k in range(1, 11):
            hit = next((s for s in samples if s[2] >= total * k / 10), None)
            if hit is None:
                break
            by_tenth.append({"tenth": k, "second": round(hit[0] - t_start, 1), "rss_mib": round(hit[1] / 1024, 1),
                             "rows_per_s": n_rows / 10 / (hit[0] - prev_t) if hit[0] > prev_t else None})
            prev_t = hit[0]
        after_first = [s[1] for s in samples if s[2] >= total / 10]
        growth = None
        if by_tenth and after_first:
            growth = 100 * (max(after_first) / (by_tenth[0]["rss_mib"] * 1024) - 1)
        cpu = f(r, "user_s") + f(r, "sys_s")
        return {"rows": n_rows, "seconds": secs, "rows_per_s": n_rows / secs if secs > 0 else None,
                "client_cpu_s_per_1k": cpu / n_rows * 1000 if n_rows else None,
                "pg_cpu_s_per_1k": (f(r, "pg_cpu1") - f(r, "pg_cpu0")) / n_rows * 1000 if n_rows else None,
                "client_peak_rss_mib": int(r["hwm_kib"]) / 1024, "wait4_maxrss_mib": int(r["maxrss_kib"]) / 1024, "samples": len(samples),
                "rss_growth_after_first_tenth_pct": growth, "by_tenth_of_file": by_tenth,
                "exit_code": int(r["rc"]), "others_cpu_pct": int(r.get("others_cpu_pct", -1))}
    if "export" in rows:
        r = rows["export"]
        n = int(r["events"])
        transfer = {"events": n, "insert_s": f(r, "insert_s"), "file_bytes": int(r["bytes"]), "lines": int(r["lines"])}
        transfer["export"] = transfer_side(r, n)
        transfer["export"]["message"] = r.get("message", "")
        bare = f(r, "bare_s")
        transfer["bare_copy"] = {"seconds": bare, "rows_per_s": n / bare if bare > 0 else None,
                                 "pg_cpu_s_per_1k": f(r, "bare_pg_cpu") / n * 1000 if n else None}
        if int(r["rc"]) != 0:
            problems.append(f"export: pgcourierctl export exited {r['rc']}")
        if int(r["lines"]) != n + 1:
            problems.append(f"export: {r['lines']} lines written for {n} events (expected one a row and the cursor line)")
        if "import" in rows:
            r = rows["import"]
            transfer["import"] = transfer_side(r, n)
            transfer["import"].update({"summary": r["summary"], "rejected_lines": int(r["rejected_lines"] or 0)})
            transfer["source_count_md5"], transfer["copy_count_md5"] = r["source_sum"], r["copy_sum"]
            transfer["same_events"] = r["source_sum"] == r["copy_sum"] and r["source_sum"].startswith(f"{n}:")
            if not transfer["same_events"]:
                problems.append(f"export: the imported events differ: source {r['source_sum']}, copy {r['copy_sum']}")
            if int(r["rc"]) != 0:
                problems.append(f"export: pgcourierctl import exited {r['rc']} ({r['summary']})")

    # ------------------------------------------------------------ table
    def fmt(v, spec):
        return "-" if v is None else format(v, spec)
    cols = [("scenario", "scenario", "<26", "s"), ("deliveries", "deliveries", ">10", ",d"),
            ("seconds", "seconds", ">7", ".2f"), ("deliveries/s", "deliveries_per_s", ">12", ",.0f"),
            ("% DB", "pct_db_limit", ">6", ".1f"), ("% HTTP", "pct_http_limit", ">6", ".1f"),
            ("% machine", "pct_machine_limit", ">9", ".1f"),
            ("CPU s/1k", "daemon_cpu_s_per_1k", ">8", ".3f"), ("PG CPU s/1k", "pg_cpu_s_per_1k", ">11", ".3f"),
            ("txn/delivery", "txn_per_delivery", ">12", ".4f"), ("peak RSS MiB", "peak_rss_mib", ">12", ".1f"),
            ("all CPU us", "all_cpu_us_per_delivery", ">10", ".0f"), ("other CPU %", "others_cpu_pct", ">11", "d")]
    print("  ".join(format(h, a) for h, _, a, _ in cols))
    for s in scenarios:
        print("  ".join(format(fmt(s.get(k), spec), a) for _, k, a, spec in cols))
    print("(CPU s/1k: the daemon's, or the peer workers'; PG CPU: the whole cluster; % of the limits measured above;"
          " machine limit = 1 / (1/DB + 1/HTTP): both limits share the same cores;"
          " all CPU us: daemon or peer workers + PostgreSQL + nginx per delivery;"
          " other CPU %: the machine's CPU used by processes outside the benchmark meanwhile, of all cores)")
    for s in scenarios:
        if "pct_of_bound" in s:
            print(f"{s['scenario']}: {s['deliveries_per_s']:,.0f}/s = {s['pct_of_bound']:.0f}% of the Little's-law bound "
                  f"{s['littles_law_bound_per_s']:,.0f}/s")
    if latency:
        c, p = latency["from_commit_ms"], latency["from_publish_call_ms"]
        print(f"latency: {latency['arrived']:,} of {latency['published']:,} events; from the publisher's commit "
              f"returning: p50 {c['p50']:.2f} ms, p99 {c['p99']:.2f} ms, max {c['max']:.2f} ms; from its INSERT call "
              f"(commit included): p50 {p['p50']:.2f} ms, p99 {p['p99']:.2f} ms, max {p['max']:.2f} ms")
    if "failures_0" in failure_rows and "failures_50" in failure_rows:
        a, b = failure_rows["failures_0"], failure_rows["failures_50"]
        print(f"failures: 50% 500s: {b['attempts']:,} attempts for {b['deliveries']:,} deliveries, "
              f"{b['attempts_per_s']:,.0f} attempts/s; daemon CPU {b['daemon_cpu_us_per_attempt']:.1f} us/attempt vs "
              f"{a['daemon_cpu_us_per_attempt']:.1f} with every answer 200 "
              f"({b['daemon_cpu_us_per_attempt'] / a['daemon_cpu_us_per_attempt']:.2f}x)")
    if health:
        print(f"table health ({health['seconds']} s, {health['delivered']:,} deliveries): "
              + "; ".join(f"{p['second']} s: claim indexes {p['claim_indexes_kib']:,} KiB, table {p['table_kib']:,} KiB, "
                          f"{p['rows']:,} rows" for p in health["series"]))
    drain_row = next((x for x in scenarios if x["scenario"] == "drain (1 sub)"), None)
    for peer in peers:
        if "skipped" in peer:
            print(f"{peer['row']}: not measured: {peer['skipped']}")
        else:
            versus = f"; drain / this = {drain_row['deliveries_per_s'] / peer['per_s']:.2f}x" if drain_row else ""
            if drain_row and drain_row.get("all_cpu_us_per_delivery") and peer.get("all_cpu_us_per_delivery"):
                versus += (f" (by CPU per delivery, all processes: {peer['all_cpu_us_per_delivery']:.0f} vs "
                           f"{drain_row['all_cpu_us_per_delivery']:.0f} us = "
                           f"{peer['all_cpu_us_per_delivery'] / drain_row['all_cpu_us_per_delivery']:.2f}x)")
            share = f"; {peer['per_s'] / machine_rate * 100:.0f} % of the machine limit" if machine_rate else ""
            print(f"peers: {peer['name']} (node {peer['node']}; best of the configurations tried: {peer['config']}): "
                  f"{peer['per_s']:,.0f} jobs/s{share}{versus}")
            if peer.get("configurations_tried"):
                print(f"  tried: {peer['configurations_tried']}")
    # CPU per delivery of every process involved hardly depends on what else runs (the rates do): on a
    # CPU-bound machine the rates compare as the inverse of these.
    by_cpu = [(x["scenario"], x["all_cpu_us_per_delivery"]) for x in scenarios if x.get("all_cpu_us_per_delivery")]
    if by_cpu:
        ncpu = os.cpu_count()
        print(f"CPU per delivery, all processes (what {ncpu} free cores would allow): " + "; ".join(
            f"{name} {us:.0f} us ({ncpu / us * 1e6:,.0f}/s)" for name, us in by_cpu))
    if noisy:
        b, a = noisy["tenant_b"], noisy["tenant_a"]
        c = b["from_commit_ms"]
        print(f"noisy: tenant A {a['subscriptions']} silent endpoints, {a['deliveries']} deliveries (at the end: "
              f"{', '.join(f'{k} {v}' for k, v in a['statuses_at_end'].items())}; the silent endpoints accepted "
              f"{a['silent_endpoints']['accepted']} connections, at most {a['silent_endpoints']['max_open']} open at once); "
              f"tenant B {b['rate_per_s']}/s for {b['seconds']} s: {b['arrived']:,} of {b['published']:,} arrived "
              f"(waited up to {noisy['grace_s']} s after publishing), commit to arrival p50 {fmt_ms(c['p50'])}, "
              f"p99 {fmt_ms(c['p99'])}, max {fmt_ms(c['max'])} (other CPU {noisy['others_cpu_pct']} %)")
        worst = ", ".join(f"{sec}s:{fmt_ms(m)}" for sec, _, m in b["max_ms_by_second_published"][::2])
        print(f"  tenant B, worst latency by second of publication (every 2nd): {worst}")
    if memory:
        o = memory["other_tenant"]
        c = o["from_commit_ms"]
        how = ("refused at publish" if memory["refused_at_publish"] else
               f"queued in {memory['big_insert_s']:.1f} s before the daemon started")
        print(f"memory: {memory['big_events']} events of {memory['big_mb']} MB ({how}; at the end: "
              f"{', '.join(f'{k} {v}' for k, v in memory['big_statuses_at_end'].items()) or 'no rows'}"
              f"{'; ' + memory['big_last_error'] if memory['big_last_error'] else ''}); daemon "
              f"{'alive' if memory['daemon_alive'] else 'EXITED (' + str(memory['daemon_exit_code']) + ')'}, peak RSS "
              f"{memory['peak_rss_mib']:,.0f} MiB; the other tenant ({o['rate_per_s']}/s): {o['arrived']:,} of "
              f"{o['published']:,} arrived, p50 {fmt_ms(c['p50'])}, p99 {fmt_ms(c['p99'])}, max {fmt_ms(c['max'])} "
              f"(other CPU {memory['others_cpu_pct']} %)")
        worst = ", ".join(f"{sec}s:{fmt_ms(m)}" for sec, _, m in o["max_ms_by_second_published"][::2])
        print(f"  the other tenant, worst latency by second of publication (every 2nd): {worst}")
        print("  daemon RSS MiB by second: " + ", ".join(f"{round(t) + 0:d}s:{m}" for t, m in memory["rss_mib_every_0_5s"][::2]))
    if rescue:
        t = rescue["kill_to_last_delivered_s"]
        print(f"rescue: {rescue['deliveries']} deliveries in flight at daemon 1 (lease {rescue['lease_left_at_kill_s']:.0f} s "
              f"left at the kill, {rescue['claim_to_kill_s']:.1f} s after its start); daemon 2 sent the first again "
              f"{rescue['kill_to_first_resent_s'] or float('nan'):.1f} s after the kill, the last was delivered "
              f"{'%.1f s' % t if t is not None else 'never (within %d s)' % rescue['waited_at_most_s']} after it; "
              f"{rescue['delivered_by_daemon_2']} delivered by daemon 2 (other CPU {rescue['others_cpu_pct']} %)")
    if xmin:
        print(f"xmin: snapshot held {xmin['held_s']:.0f} s; deliveries/s before {xmin['before_rate_per_s'] or 0:,.0f}, "
              f"during min {xmin['during_min_rate_per_s'] or 0:,.0f} / mean {xmin['during_mean_rate_per_s'] or 0:,.0f}; "
              f"back to 90 % of before "
              f"{'%.0f s after the commit' % xmin['recovery_s'] if xmin['recovery_s'] is not None else 'not within the run'}"
              f" (other CPU {xmin['others_cpu_pct']} %)")
        print("  10 s windows (s from the start of the hold: deliveries/s, ms per claim, rows per claim): " + "; ".join(
            f"{w['from_s']:.0f}{'*' if w['phase'] == 'during' else ''}: {w['deliveries_per_s']:,.0f}/s "
            f"{w['claim_ms'] if w['claim_ms'] is not None else float('nan'):.1f} ms {w['rows_per_claim'] or 0:.0f}"
            for w in xmin["windows"]) + "  (* = snapshot held)")
        print("  claim indexes KiB / dead tuples of delivery_queue every 10 s: " + ", ".join(
            f"{round(p['second']) + 0:d}s:{p['claim_indexes_kib']:,}/{p['dead_tuples']:,}" for p in xmin["sizes_every_10s"]))

    if filters:
        subs = settings.get("filter_subscriptions", 10)
        print(f"filters ({subs} subscriptions of one tenant; pgbench -c 4 -j 2, one publish a transaction, no daemon): "
              + "; ".join(f"{p['variant']} {fmt(p['publish_per_s'], ',.0f')}/s, PG CPU {fmt(p['pg_cpu_us_per_event'], '.0f')} "
                          f"us/event, {fmt(p['deliveries_per_event'], '.2f')} deliveries/event "
                          f"({p['others_cpu_pct']} % other CPU)" for p in filters["publish"]))
        mp, mc = filters["median_publish_per_s"], filters["median_pg_cpu_us_per_event"]
        if mp["plain"] and mp["all"]:
            print(f"  {subs} filters that every event matches vs none (median of the runs of each): publishes/s "
                  f"{mp['all']:,.0f} vs {mp['plain']:,.0f} ({mp['all'] / mp['plain']:.2f}x); PG CPU per event "
                  f"{mc['all']:.0f} vs {mc['plain']:.0f} us ({mc['all'] - mc['plain']:+.0f} us, "
                  f"{(mc['all'] - mc['plain']) / subs:+.1f} us per filter evaluated)")
        e = filters["predicate_alone"]
        if e:
            print(f"  the predicate alone ('$.amount > 0' on {e['rows']:,} such payloads): "
                  f"{e['us_per_evaluation']:.2f} us per evaluation ({e['count_with_filter_ms']:.0f} ms against "
                  f"{e['count_ms']:.0f} ms without it)")
        ins = filters["bulk_insert"]
        if ins:
            print(f"  bulk INSERT (2 sessions) of {settings.get('filter_events', 0):,} events: " + "; ".join(
                f"{'no filter' if v == 'plain' else 'filters'} {x['events_per_s']:,.0f} events/s, PG CPU "
                f"{x['pg_cpu_us_per_event']:.0f} us/event" for v, x in ins.items()))
        d = {k: next((s for s in scenarios if s.get("run") == k), None) for k in ("filters_plain", "filters_all")}
        if d["filters_plain"] and d["filters_all"]:
            a, b = d["filters_plain"], d["filters_all"]
            print(f"  drain by one daemon: no filter {a['deliveries_per_s']:,.0f}/s, filters {b['deliveries_per_s']:,.0f}/s "
                  f"({b['deliveries_per_s'] / a['deliveries_per_s']:.2f}x; filters are evaluated at publish only)")
    if transfer:
        e, b = transfer["export"], transfer["bare_copy"]
        tenths = lambda side: ", ".join(  # noqa: E731
            f"{t['tenth'] * 10}%:{t['rss_mib']:.1f}MiB/{fmt(t['rows_per_s'], ',.0f')}" for t in side["by_tenth_of_file"])
        print(f"export: {transfer['events']:,} events ({transfer['file_bytes'] / 1e6:,.0f} MB of NDJSON) in {e['seconds']:.1f} s: "
              f"{fmt(e['rows_per_s'], ',.0f')} rows/s; pgcourierctl CPU {e['client_cpu_s_per_1k']:.3f} s/1k rows, "
              f"PG CPU {e['pg_cpu_s_per_1k']:.3f} s/1k; peak RSS {e['client_peak_rss_mib']:.1f} MiB "
              f"(other CPU {e['others_cpu_pct']} %); one COPY of the same lines: {fmt(b['rows_per_s'], ',.0f')} rows/s, "
              f"PG CPU {b['pg_cpu_s_per_1k']:.3f} s/1k")
        print(f"  by tenth of the file (RSS/rows per s): {tenths(e)}")
        i = transfer.get("import")
        if i:
            print(f"import (fresh database, no subscriptions): {i['seconds']:.1f} s: {fmt(i['rows_per_s'], ',.0f')} rows/s; "
                  f"pgcourierctl CPU {i['client_cpu_s_per_1k']:.3f} s/1k rows, PG CPU {i['pg_cpu_s_per_1k']:.3f} s/1k; "
                  f"peak RSS {i['client_peak_rss_mib']:.1f} MiB (other CPU {i['others_cpu_pct']} %); {i['summary']}; "
                  f"same events: {'yes' if transfer['same_events'] else 'NO'} ({transfer['copy_count_md5']})")
            print(f"  by tenth of the file (RSS/rows per s): {tenths(i)}")

    # ------------------------------------------------------------ targets
    by_name = {s["scenario"]: s for s in scenarios}
    drain = by_name.get("drain (1 sub)")
    targets = []

    def target(name, value, goal, met, unit="", issue=6):
        targets.append({"target": name, "issue": str(issue), "value": value, "goal": goal, "met": met})
        shown = "not measured" if value is None else (f"{value:,.3f}{unit}" if isinstance(value, float) else f"{value}{unit}")
        print(f"  {'MET    ' if met else ('MISSED ' if value is not None else 'n/a    ')} {name}: {shown} (goal {goal})")

    graphile = next((p for p in peers if p["row"] == "peers" and "per_s" in p), None)
    db_row = by_name.get("DB limit (pgbench)")

    print("targets of issue 15 (a fair, bounded, fast queue):")
    ratio = drain["deliveries_per_s"] / graphile["per_s"] if drain and graphile else None
    target("drain vs graphile-worker 0.18 at its best", ratio, ">= 2x", ratio is not None and ratio >= 2, "x", issue=15)
    pct = drain.get("pct_machine_limit") if drain else None
    target("drain, % of the machine limit 1/(1/DB + 1/HTTP)", pct, ">= 80 %", pct is not None and pct >= 80, " %", issue=15)
    cpu = drain["daemon_cpu_s_per_1k"] * 1000 if drain else None
    target("daemon CPU per delivery (drain)", cpu, "<= 25 us", cpu is not None and cpu <= 25, " us", issue="6, 15")
    pgc = drain["pg_cpu_s_per_1k"] * 1000 if drain else None
    bare = db_row["pg_cpu_s_per_1k"] * 1000 if db_row else None
    target("PostgreSQL CPU per delivery (drain), us", pgc,
           f"<= the bare cycle's ({bare:.0f} us)" if bare is not None else "<= the bare cycle's (pgbench row)",
           pgc is not None and bare is not None and pgc <= bare, " us", issue=15)
    v = noisy["tenant_b"]["from_commit_ms"]["p99"] if noisy else None
    target("noisy neighbour: tenant B p99, commit to arrival", v if v is not None or not noisy else "not all arrived",
           "< 250 ms", v is not None and v < 250, " ms" if v is not None else "", issue=15)
    v = (noisy["tenant_b"]["arrived"], noisy["tenant_b"]["published"]) if noisy else None
    target("noisy neighbour: tenant B events arrived", f"{v[0]:,} of {v[1]:,}" if v else None, "all",
           v is not None and v[0] == v[1], issue=15)
    v = memory["peak_rss_mib"] if memory else None
    target(f"memory: peak RSS with {memory['big_events'] if memory else 6} events of "
           f"{memory['big_mb'] if memory else 100} MB queued", v, "< 256 MiB", v is not None and v < 256, " MiB", issue=15)
    if memory:
        o = memory["other_tenant"]
        v = (f"{o['arrived']:,} of {o['published']:,} arrived, max {fmt_ms(o['from_commit_ms']['max'])}"
             + ("" if memory["daemon_alive"] else ", daemon exited"))
    else:
        v = None
    target("memory: the other tenant's deliveries continue", v, "all arrive, none later than 1 s",
           bool(memory and memory["others_continue"] and memory["daemon_alive"]), issue=15)
    v = rescue["kill_to_last_delivered_s"] if rescue else None
    target("rescue: kill -9 to the last of its deliveries delivered by another daemon",
           v if v is not None or not rescue else "not all delivered", "<= 30 s", v is not None and v <= 30,
           " s" if v is not None else "", issue=15)
    v = (100 * xmin["during_min_rate_per_s"] / xmin["before_rate_per_s"]
         if xmin and xmin["before_rate_per_s"] and xmin["during_min_rate_per_s"] is not None else None)
    target("xmin held: deliveries/s, worst 10 s window during / before", v, ">= 50 %", v is not None and v >= 50, " %",
           issue=15)
    v = xmin["recovery_s"] if xmin else None
    target("xmin released: back to 90 % of the before rate (10 s window)",
           v if v is not None or not xmin else "not within the run", "<= 30 s", v is not None and v <= 30,
           " s" if v is not None else "", issue=15)

    print("targets of issue 17 (filters, export and import):")
    for side in ("export", "import"):
        s = transfer.get(side) if transfer else None
        v = s["rss_growth_after_first_tenth_pct"] if s else None
        target(f"{side}: pgcourierctl RSS after the first tenth of {transfer['events'] if transfer else 1_000_000:,} rows, "
               "growth over its RSS then", v, "flat (<= 10 %)", v is not None and v <= 10, " %", issue=17)
    print("  (filters: measured, no target; see the lines above)")

    print("targets of issue 6 (kept):")
    txn = drain.get("txn_per_delivery") if drain else None
    target("transactions per delivery (drain)", txn, "<= 1/32 = 0.03125", txn is not None and txn <= 1 / 32, issue=6)
    for conc in (256, 1024):
        s = by_name.get(f"slow 50 ms, {conc} in flight")
        v = s["pct_of_bound"] if s else None
        target(f"slow receiver, {conc} in flight, % of Little's-law bound", v, ">= 80 %", v is not None and v >= 80, " %",
               issue=6)
    p50 = latency["from_commit_ms"]["p50"] if latency else None
    p99 = latency["from_commit_ms"]["p99"] if latency else None
    rate = f"{settings['latency_rate']:,}/s"
    target(f"latency p50 at {rate} (commit to arrival)", p50, "<= 5 ms", p50 is not None and p50 <= 5, " ms", issue=6)
    target(f"latency p99 at {rate} (commit to arrival)", p99, "<= 25 ms", p99 is not None and p99 <= 25, " ms", issue=6)
    s = by_name.get("slow 50 ms, 1024 in flight")
    rss = s["peak_rss_mib"] if s else None
    target("peak RSS with 1,024 in flight", rss, "<= 64 MiB", rss is not None and rss <= 64, " MiB", issue=6)
    fr = (failure_rows["failures_50"]["daemon_cpu_us_per_attempt"] / failure_rows["failures_0"]["daemon_cpu_us_per_attempt"]
          if len(failure_rows) == 2 else None)
    target("daemon CPU per attempt, 50% failures vs success", fr, "<= 1.5x", fr is not None and fr <= 1.5, "x", issue=6)
    growth = None
    if health and health["claim_indexes_kib_half_way"]:
        growth = 100 * (health["claim_indexes_kib_end"] / health["claim_indexes_kib_half_way"] - 1)
    target("claim-path indexes, growth over the second half of the health run", growth, "bounded (<= 25 %)",
           growth is not None and growth <= 25, " %", issue=6)
    pct_db = drain.get("pct_db_limit") if drain else None
    print("superseded targets of issue 6 (shown, not counted): drain >= 60 % of the DB limit "
          f"({'%.1f %%' % pct_db if pct_db is not None else 'not measured'}; now >= 80 % of the machine limit); "
          "drain >= 3x graphile-worker in one process with fetch() (now >= 2x graphile-worker at its best)")
    met = sum(1 for t in targets if t["met"])
    print(f"{met} of {len(targets)} targets met")

    for p in problems:
        print(f"CHECK FAILED: {p}")
    runtime = time.time() - float(t0)
    model = "unknown"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"nproc": os.cpu_count(), "cpu_model": model, "kernel": platform.release(),
                    "mem_total_kib": int(next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")))},
        "versions": {"pgcourierd": v_daemon, "git_commit": commit, "git_modified_tracked_files": int(dirty),
                     "postgres": v_pg, "nginx": v_nginx, "libcurl": v_curl, "wrk": v_wrk},
        "settings": {**settings, "db_limit_batch": 64, "pgbench": "-n -M prepared -c 8 -j 2 -T 10", "wrk": "-t2 -c256 -d10s",
                     "postgres": "tools/pg-local (fsync on, synchronous_commit on, shared_buffers 256MB)"},
        "scenarios": scenarios,
        "table_health": health,
        "machine_limit_per_s": machine_rate,
        "peers": peers,
        "noisy": noisy,
        "memory": memory,
        "rescue": rescue,
        "xmin": xmin,
        "filters": filters,
        "transfer": transfer,
        "targets": targets,
        "checks_failed": problems,
        "runtime_seconds": round(runtime, 1),
    }
    with open(out, "w") as fh:
        json.dump(result, fh, indent=2)
        fh.write("\n")
    print(f"runtime {runtime:.0f} s; wrote {os.path.relpath(out)}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
