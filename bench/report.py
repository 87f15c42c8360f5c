#!/usr/bin/env python3
"""The table, the targets of issue 6 and bench/results.json, from bench/run.

  bench/report.py RESULTS_TXT OUT_JSON T0 V_DAEMON V_PG V_NGINX V_CURL V_WRK COMMIT DIRTY SETTINGS

RESULTS_TXT has one line per scenario: the name, then tab-separated key=value
pairs (see `record` in bench/run). Scenarios that did not run are left out of
the table and their targets are reported as "not measured". Exits 1 when a
correctness check failed (lost or duplicated deliveries, a receiver count
that does not match), never because a performance target was missed.
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
        })
        if int(db["queue_left"]) == 0:
            print("WARNING: the DB-limit queue ran dry: the DB limit is a lower bound")
    if "http" in rows:
        h = rows["http"]
        http_rate = f(h, "rate")
        scenarios.append({"scenario": "HTTP limit (wrk)", "deliveries": int(h["deliveries"]), "seconds": f(h, "seconds"),
                          "deliveries_per_s": http_rate, "non_2xx": int(h["non2xx"]), "body_bytes": int(h["body_bytes"])})

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
        row.update(extra)
        if row["receiver_hits"] != n or row["rows"] != n:
            problems.append(f"{label}: receiver counted {row['receiver_hits']}, {row['rows']} rows delivered, expected {n}")
        return row

    for key, label in (("drain", "drain (1 sub)"), ("fanout", f"fan-out ({settings['fanout_subscriptions']} subs)")):
        if key in rows:
            row = daemon_row(key, label)
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
        peer = {"row": key, "name": r["name"], "node": r["node"], "config": r["config"], "jobs": n, "seconds": secs,
                "per_s": n / secs, "worker_cpu_s_per_1k": f(r, "worker_cpu") / n * 1000,
                "pg_cpu_s_per_1k": (f(r, "pg_cpu1") - f(r, "pg_cpu0")) / n * 1000, "receiver_hits": int(r["hits"]),
                "configurations_tried": r.get("tried")}
        peers.append(peer)
        if int(r["hits"]) != n:
            problems.append(f"{key}: receiver counted {r['hits']} for {n} jobs")
        if r.get("all_hits_ok", "1") != "1":
            problems.append(f"{key}: in one of the configurations tried the receiver count did not match the jobs")
        name, version = r["name"].rsplit(" ", 1)
        scenarios.append({"scenario": f"{name} {version}", "deliveries": n, "seconds": secs, "deliveries_per_s": n / secs,
                          "daemon_cpu_s_per_1k": peer["worker_cpu_s_per_1k"], "pg_cpu_s_per_1k": peer["pg_cpu_s_per_1k"]})
    for s in scenarios:
        if db_rate:
            s["pct_db_limit"] = 100 * s["deliveries_per_s"] / db_rate
        if http_rate:
            s["pct_http_limit"] = 100 * s["deliveries_per_s"] / http_rate

    # ------------------------------------------------------------ table
    def fmt(v, spec):
        return "-" if v is None else format(v, spec)
    cols = [("scenario", "scenario", "<26", "s"), ("deliveries", "deliveries", ">10", ",d"),
            ("seconds", "seconds", ">7", ".2f"), ("deliveries/s", "deliveries_per_s", ">12", ",.0f"),
            ("% DB", "pct_db_limit", ">6", ".1f"), ("% HTTP", "pct_http_limit", ">6", ".1f"),
            ("CPU s/1k", "daemon_cpu_s_per_1k", ">8", ".3f"), ("PG CPU s/1k", "pg_cpu_s_per_1k", ">11", ".3f"),
            ("txn/delivery", "txn_per_delivery", ">12", ".4f"), ("peak RSS MiB", "peak_rss_mib", ">12", ".1f")]
    print("  ".join(format(h, a) for h, _, a, _ in cols))
    for s in scenarios:
        print("  ".join(format(fmt(s.get(k), spec), a) for _, k, a, spec in cols))
    print("(CPU s/1k: the daemon's, or the peer workers'; PG CPU: the whole cluster; % of the limits measured above)")
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
            print(f"peers: {peer['name']} (node {peer['node']}; best of the configurations tried: {peer['config']}): "
                  f"{peer['per_s']:,.0f} jobs/s{versus}")
            if peer.get("configurations_tried"):
                print(f"  tried: {peer['configurations_tried']}")

    # ------------------------------------------------------------ targets
    by_name = {s["scenario"]: s for s in scenarios}
    drain = by_name.get("drain (1 sub)")
    targets = []

    def target(name, value, goal, met, unit=""):
        targets.append({"target": name, "value": value, "goal": goal, "met": met})
        shown = "not measured" if value is None else (f"{value:,.3f}{unit}" if isinstance(value, float) else f"{value}{unit}")
        print(f"  {'MET    ' if met else ('MISSED ' if value is not None else 'n/a    ')} {name}: {shown} (goal {goal})")

    print("targets (issue 6):")
    pct = drain.get("pct_db_limit") if drain else None
    target("drain, % of the DB limit", pct, ">= 60 %", pct is not None and pct >= 60, " %")
    graphile = next((p for p in peers if p["row"] == "peers" and "per_s" in p), None)
    ratio = drain["deliveries_per_s"] / graphile["per_s"] if drain and graphile else None
    target("drain vs graphile-worker 0.18", ratio, ">= 3x", ratio is not None and ratio >= 3, "x")
    txn = drain.get("txn_per_delivery") if drain else None
    target("transactions per delivery (drain)", txn, "<= 1/32 = 0.03125", txn is not None and txn <= 1 / 32)
    cpu = drain["daemon_cpu_s_per_1k"] * 1000 if drain else None
    target("daemon CPU per delivery (drain)", cpu, "<= 25 us", cpu is not None and cpu <= 25, " us")
    for conc in (256, 1024):
        s = by_name.get(f"slow 50 ms, {conc} in flight")
        v = s["pct_of_bound"] if s else None
        target(f"slow receiver, {conc} in flight, % of Little's-law bound", v, ">= 80 %", v is not None and v >= 80, " %")
    p50 = latency["from_commit_ms"]["p50"] if latency else None
    p99 = latency["from_commit_ms"]["p99"] if latency else None
    rate = f"{settings['latency_rate']:,}/s"
    target(f"latency p50 at {rate} (commit to arrival)", p50, "<= 5 ms", p50 is not None and p50 <= 5, " ms")
    target(f"latency p99 at {rate} (commit to arrival)", p99, "<= 25 ms", p99 is not None and p99 <= 25, " ms")
    s = by_name.get("slow 50 ms, 1024 in flight")
    rss = s["peak_rss_mib"] if s else None
    target("peak RSS with 1,024 in flight", rss, "<= 64 MiB", rss is not None and rss <= 64, " MiB")
    fr = (failure_rows["failures_50"]["daemon_cpu_us_per_attempt"] / failure_rows["failures_0"]["daemon_cpu_us_per_attempt"]
          if len(failure_rows) == 2 else None)
    target("daemon CPU per attempt, 50% failures vs success", fr, "<= 1.5x", fr is not None and fr <= 1.5, "x")
    growth = None
    if health and health["claim_indexes_kib_half_way"]:
        growth = 100 * (health["claim_indexes_kib_end"] / health["claim_indexes_kib_half_way"] - 1)
    target("claim-path indexes, growth over the second half of the health run", growth, "bounded (<= 25 %)",
           growth is not None and growth <= 25, " %")

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
        "peers": peers,
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
