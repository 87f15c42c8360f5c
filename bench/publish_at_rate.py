#!/usr/bin/python3
"""Publishes events at a fixed rate, for the latency scenario of bench/run.

  bench/publish_at_rate.py DSN TENANT RATE SECONDS OUT

THREADS sessions (autocommit: one prepared INSERT, one commit per event) share the
schedule: event k is due at start + k / RATE. An event that falls behind its
due time is sent at once (no burst is skipped, none is merged). For each event
OUT gets "<event id> <unix us before the INSERT> <unix us when the commit
returned>"; the receiver logs its arrival time by webhook-id (= event id), so
bench/report.py can take publish-to-arrival latencies from the two files.
"""
import sys
import threading
import time

import psycopg2

THREADS = 8


def main():
    dsn, tenant, rate, seconds, out = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
    total = int(rate * seconds)
    payload = '{"pad": "%s"}' % ("x" * 900)
    results = [[] for _ in range(THREADS)]
    errors = []
    start = time.time() + 0.5  # every session connected before the first event is due

    def publish(k):
        try:
            conn = psycopg2.connect(dsn)
            conn.autocommit = True
            cur = conn.cursor()
            # A prepared statement, as a busy producer would use: parsed and planned once per session.
            cur.execute("PREPARE publish(text, jsonb) AS INSERT INTO courier.events (tenant_id, event_type, payload) "
                        "VALUES ($1, 'bench.latency', $2) RETURNING id")
            for i in range(k, total, THREADS):
                delay = start + i / rate - time.time()
                if delay > 0:
                    time.sleep(delay)
                before = time.time()
                cur.execute("EXECUTE publish(%s, %s)", (tenant, payload))
                event_id = cur.fetchone()[0]
                results[k].append((event_id, before, time.time()))
            conn.close()
        except Exception as e:  # reported below; the scenario fails on a short count
            errors.append(repr(e))

    threads = [threading.Thread(target=publish, args=(k,)) for k in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    end = time.time()
    with open(out, "w") as fh:
        for rows in results:
            for event_id, before, after in rows:
                fh.write(f"{event_id} {int(before * 1e6)} {int(after * 1e6)}\n")
    published = sum(len(r) for r in results)
    print(f"published {published} events in {end - start:.2f} s ({published / (end - start):.0f}/s)", file=sys.stderr)
    for e in errors:
        print(f"publisher error: {e}", file=sys.stderr)
    sys.exit(0 if published == total and not errors else 1)


if __name__ == "__main__":
    main()
