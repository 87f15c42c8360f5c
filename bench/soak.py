#!/usr/bin/python3
"""make soak: a steady mixed load for a long time, to see that nothing grows and nothing is lost.

  bench/soak.py [--minutes 30] [--rate 200] [--out bench/soak-results.json]

A throwaway PostgreSQL (tools/pg-local, fsync off), two pgcourierd, the benchmark receiver
(pgcourier-bench-receiver) answering 10 % of requests with 500 after 5 ms. For the whole run:
  - a producer publishes --rate events/s for two tenants (10 subscriptions: each event fans out to 5),
  - integration runs are enqueued at a tenth of that rate (to the same receiver, 10 % fail too),
  - every 90 s dead letters are replayed (pgcourierctl replay), every 2 minutes one daemon gets
    SIGHUP, every 5 minutes one daemon is restarted (SIGTERM, then started again);
  - every 30 s a sample: each daemon's RSS and open file descriptors, the sizes of the claim-path
    tables and indexes, the queue lag (oldest due, unleased), throughput since the last sample.
At the end the producer stops, the backlog drains, and the run checks that every delivery and run
finished (nothing lost, nothing left leased), then reports the samples and whether each series stayed
flat (last third against the second third; the first third is warm-up). Exit 1 on loss or growth.
"""
import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import psycopg2

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.abspath(os.environ.get("BUILD_DIR", os.path.join(ROOT, "build")))
PGD, CTL = os.path.join(BUILD, "pgcourierd"), os.path.join(BUILD, "pgcourierctl")
RECEIVER = os.path.join(BUILD, "pgcourier-bench-receiver")
PG_LOCAL = os.path.join(ROOT, "tools", "pg-local")

POLICIES = """policies:
  default:
    max_attempts: 3
    backoff: {base: 200ms, factor: 2.0, cap: 2s, jitter: 0.1}
    timeouts: {connect: 1s, request: 2s}
    retryable_statuses: ["5xx"]
    endpoint: {require_https: false, allow_cidrs: [127.0.0.0/8]}
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log(msg):
    print(time.strftime("%H:%M:%S ") + msg, flush=True)


class Daemon:
    def __init__(self, work, name, url, key, policies):
        self.name, self.url, self.key = name, url, key
        self.config = os.path.join(work, f"{name}.yaml")
        self.log_path = os.path.join(work, f"{name}.log")
        with open(self.config, "w") as f:
            f.write(f"worker_id: {name}\npolicies_file: {policies}\nmetrics_address: ''\n"
                    "poll_interval: 500ms\nlease_duration: 5s\nretention_completed: 2m\n"
                    "retention_dead_lettered: 10m\nmaintenance_interval: 2s\nlog_level: warn\n")
        self.proc = None
        self.restarts = 0

    def start(self):
        self.proc = subprocess.Popen([PGD, "--config", self.config], stdout=open(self.log_path, "ab"),
                                     stderr=subprocess.STDOUT,
                                     env={**os.environ, "DATABASE_URL": self.url, "PGCOURIER_MASTER_KEY_FILE": self.key})

    def restart(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        self.restarts += 1
        self.start()

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def fds(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))


def ctl(url, key, *args):
    out = subprocess.run([CTL, *args], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "DATABASE_URL": url, "PGCOURIER_MASTER_KEY_FILE": key,
                              "PGCOURIER_CONFIG": "", "PGCOURIER_POLICIES_FILE": ""})
    if out.returncode != 0:
        raise RuntimeError(f"pgcourierctl {' '.join(args)}: {out.stderr.strip()}")
    return out.stdout


SIZES = ("courier.delivery_queue", "courier.deliveries", "courier.events", "courier.runs")


def sample(db, daemons, last, started):
    cur = db.cursor()
    cur.execute("SELECT count(*) FILTER (WHERE status = 'delivered'), count(*) FILTER (WHERE status = 'dead_lettered'),"
                " count(*) FROM courier.deliveries")
    delivered, dead, total = cur.fetchone()
    cur.execute("SELECT coalesce(extract(epoch FROM now() - min(due_at)), 0) FROM courier.delivery_queue "
                "WHERE lease_owner IS NULL AND due_at <= now()")
    lag = float(cur.fetchone()[0])
    sizes = {}
    for rel in SIZES:
        cur.execute("SELECT pg_relation_size(%s::regclass), pg_indexes_size(%s::regclass)", (rel, rel))
        table, indexes = cur.fetchone()
        sizes[rel] = {"table_kib": table // 1024, "indexes_kib": indexes // 1024}
    cur.execute("SELECT count(*) FROM courier.delivery_queue")
    queued = cur.fetchone()[0]
    now = time.monotonic()
    s = {"t_s": round(now - started), "rss_kib": {d.name: d.rss_kib() for d in daemons},
         "fds": {d.name: d.fds() for d in daemons}, "queue_lag_s": round(lag, 2), "queued": queued,
         "delivered_total": delivered, "dead_lettered_total": dead, "deliveries_total": total, "sizes": sizes}
    # Finished deliveries are pruned (retention_completed: 2m), so throughput comes from the attempts.
    cur.execute("SELECT count(*) FROM courier.delivery_attempts WHERE recorded_at > now() - %s * interval '1 second'",
                (max(1, round(now - last["at"])),))
    s["attempts_per_s"] = round(cur.fetchone()[0] / max(1.0, now - last["at"]), 1)
    last["at"] = now
    return s


def flat(series, slack):
    """The last third's median is within `slack` (a ratio) of the second third's."""
    n = len(series)
    if n < 6:
        return True, 0.0
    mid, end = series[n // 3: 2 * n // 3], series[2 * n // 3:]
    a, b = statistics.median(mid), statistics.median(end)
    growth = (b - a) / a if a else (0.0 if b == 0 else float("inf"))
    return growth <= slack, round(growth, 3)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", 30)))
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "soak-results.json"))
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="pgcourier-soak.")
    os.chmod(work, 0o755)
    pgdir = os.path.join(work, "pg")
    url = subprocess.check_output([PG_LOCAL, "start", pgdir, "--fast"], text=True).strip()
    procs = []
    try:
        key = os.path.join(work, "master.key")
        subprocess.check_call([CTL, "keygen", "--out", key], stdout=subprocess.DEVNULL)
        policies = os.path.join(work, "policies.yaml")
        with open(policies, "w") as f:
            f.write(POLICIES)
        ctl(url, key, "migrate")
        port = free_port()
        receiver = subprocess.Popen([RECEIVER, "--port", str(port), "--latency-ms", "5", "--fail-ratio", "0.1",
                                     "--fail-status", "500"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(receiver)
        time.sleep(0.5)
        for tenant in ("acme", "globex"):
            for i in range(5):
                ctl(url, key, "subscription", "create", "--tenant", tenant, "--url",
                    f"http://127.0.0.1:{port}/{tenant}/{i}", "--events", "*")
        connection = ctl(url, key, "connection", "create", "--tenant", "acme", "--provider", "vendor",
                         "--base-url", f"http://127.0.0.1:{port}").strip()
        daemons = [Daemon(work, f"soak{i}", url, key, policies) for i in (1, 2)]
        for d in daemons:
            d.start()
        time.sleep(2)

        stop = threading.Event()
        published = {"events": 0, "runs": 0, "errors": []}

        def produce():
            conn = psycopg2.connect(url)
            conn.autocommit = True
            cur = conn.cursor()
            t0, k = time.monotonic(), 0
            while not stop.is_set():
                due = t0 + k / args.rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                try:
                    cur.execute("SELECT courier.publish(%s, 'order.created', %s::jsonb)",
                                ("acme" if k % 2 else "globex", json.dumps({"n": k, "pad": "x" * 200})))
                    published["events"] += 1
                    if k % 10 == 0:
                        cur.execute("SELECT courier.enqueue_run('acme', %s, 'send', 'POST', '/runs', %s, '{}'::jsonb)",
                                    (connection, json.dumps({"n": k})))
                        published["runs"] += 1
                except psycopg2.Error as e:
                    published["errors"].append(str(e).strip()[:200])
                k += 1
            conn.close()

        producer = threading.Thread(target=produce)
        producer.start()
        db = psycopg2.connect(url)
        db.autocommit = True
        started = time.monotonic()
        last = {"at": started}
        samples, events = [], []
        end = started + args.minutes * 60
        next_sample, next_replay, next_hup, next_restart = started + 30, started + 90, started + 120, started + 300
        rng = random.Random(7)
        log(f"soak: {args.minutes} min at {args.rate} events/s (x5 deliveries) + runs; work dir {work}")
        while time.monotonic() < end:
            now = time.monotonic()
            if now >= next_sample:
                samples.append(sample(db, daemons, last, started))
                s = samples[-1]
                log(f"t={s['t_s']}s rss={s['rss_kib']} fds={s['fds']} lag={s['queue_lag_s']}s queued={s['queued']} "
                    f"attempts/s={s['attempts_per_s']}")
                next_sample += 30
            if now >= next_replay:
                out = ctl(url, key, "replay", "--status", "dead_lettered")
                events.append({"t_s": round(now - started), "replay": out.strip().splitlines()[-1:]})
                next_replay += 90
            if now >= next_hup:
                d = rng.choice(daemons)
                d.proc.send_signal(signal.SIGHUP)
                events.append({"t_s": round(now - started), "sighup": d.name})
                next_hup += 120
            if now >= next_restart:
                d = rng.choice(daemons)
                d.restart()
                events.append({"t_s": round(now - started), "restart": d.name})
                next_restart += 300
            time.sleep(0.5)
        stop.set()
        producer.join()
        log(f"producer stopped: {published['events']} events, {published['runs']} runs; draining")
        drain_deadline = time.monotonic() + 180
        cur = db.cursor()
        while time.monotonic() < drain_deadline:
            cur.execute("SELECT count(*) FROM courier.delivery_queue WHERE due_at < 'infinity'")
            left = cur.fetchone()[0]
            cur.execute("SELECT count(*) FROM courier.runs WHERE status NOT IN ('completed', 'failed', 'dead_lettered')")
            runs_left = cur.fetchone()[0]
            if left == 0 and runs_left == 0:
                break
            time.sleep(1)
        # Nothing lost: every event that was published has one delivery per subscription (5), and every
        # delivery and run is finished (pruned deliveries were finished: retention prunes only those).
        cur.execute("SELECT count(*) FROM courier.events")
        events_kept = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM courier.delivery_queue")
        queue_left = cur.fetchone()[0]
        cur.execute("SELECT status, count(*) FROM courier.runs GROUP BY status")
        runs = dict(cur.fetchall())
        cur.execute("SELECT count(*) FROM courier.deliveries d WHERE NOT EXISTS "
                    "(SELECT 1 FROM courier.delivery_queue q WHERE q.delivery_id = d.id) "
                    "AND d.status NOT IN ('delivered', 'failed', 'dead_lettered')")
        stranded = cur.fetchone()[0]
        problems = []
        if queue_left:
            problems.append(f"{queue_left} deliveries still queued after the drain")
        if stranded:
            problems.append(f"{stranded} deliveries neither queued nor finished")
        if published["errors"]:
            problems.append(f"{len(published['errors'])} publish errors, e.g. {published['errors'][:3]}")
        open_runs = sum(v for k, v in runs.items() if k not in ("completed", "failed", "dead_lettered"))
        if open_runs:
            problems.append(f"{open_runs} runs not finished: {runs}")
        # Finished runs, like finished deliveries, are pruned after retention_completed (2 minutes here): the
        # table holds the last minutes' runs, never more than were enqueued, and none unfinished (above).
        if sum(runs.values()) > published["runs"]:
            problems.append(f"{published['runs']} runs enqueued, {sum(runs.values())} in the table")
        for d in daemons:
            if d.proc.poll() is not None:
                problems.append(f"{d.name} exited with {d.proc.returncode}")
        # Flat: RSS per daemon, fds, claim-path sizes, lag (a restart resets RSS: medians absorb it).
        verdicts = {}
        for d in daemons:
            verdicts[f"rss {d.name}"] = flat([s["rss_kib"][d.name] for s in samples], 0.25)
            verdicts[f"fds {d.name}"] = flat([s["fds"][d.name] for s in samples], 0.25)
        for rel in SIZES:
            verdicts[f"{rel} table+indexes"] = flat(
                [s["sizes"][rel]["table_kib"] + s["sizes"][rel]["indexes_kib"] for s in samples], 0.5)
        lag_ok = all(s["queue_lag_s"] < 30 for s in samples[len(samples) // 3:])
        verdicts["queue lag < 30 s"] = (lag_ok, max((s["queue_lag_s"] for s in samples), default=0))
        verdicts["throughput"] = flat([-s["attempts_per_s"] for s in samples], 0.5)  # a fall shows as growth
        for name, (ok, growth) in verdicts.items():
            if not ok:
                problems.append(f"{name} grew: {growth}")
        result = {"minutes": args.minutes, "rate": args.rate, "published": {k: v for k, v in published.items()
                                                                            if k != "errors"},
                  "events_kept": events_kept, "runs": runs, "restarts": {d.name: d.restarts for d in daemons},
                  "actions": events, "samples": samples,
                  "verdicts": {k: {"flat": ok, "growth": g} for k, (ok, g) in verdicts.items()},
                  "problems": problems}
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
        log(f"results in {args.out}")
        for name, (ok, growth) in verdicts.items():
            print(f"  {'ok  ' if ok else 'GREW'} {name}: {growth}")
        if problems:
            print("soak FAILED:\n  " + "\n  ".join(problems))
            return 1
        print("soak passed: nothing lost, nothing grew")
        return 0
    finally:
        for d in locals().get("daemons", []):
            if d.proc and d.proc.poll() is None:
                d.proc.send_signal(signal.SIGTERM)
                try:
                    d.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    d.proc.kill()
        for p in procs:
            p.terminate()
        subprocess.call([PG_LOCAL, "destroy", pgdir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    sys.exit(main())
