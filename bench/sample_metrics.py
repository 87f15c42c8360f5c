#!/usr/bin/python3
"""Samples a running pgcourierd's /metrics (the xmin scenario of bench/run).

  bench/sample_metrics.py URL OUT INTERVAL_S [PID]

Every INTERVAL_S seconds until SIGTERM, appends one line to OUT:

  <unix time s> <delivered total> <claim_due sum s> <claim_due count>
  <record_outcomes sum s> <record_outcomes count> <claimed rows sum> <in flight> <RSS KiB>

from the counters pgcourier_deliveries_finished_total{status="delivered"},
pgcourier_db_statement_duration_seconds{statement="claim_due"} and
{statement="record_outcomes"} (the histograms' _sum and _count),
pgcourier_claim_batch_size_sum, pgcourier_requests_in_flight and, with PID,
the process's VmRSS. A scrape that fails writes nothing for that tick. Rates
and the mean cost of a claim per window are differences of consecutive lines
(bench/report.py).
"""
import re
import signal
import sys
import time
import urllib.request

LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)')


def scrape(url):
    values = {}
    with urllib.request.urlopen(url, timeout=2) as res:
        for line in res.read().decode().splitlines():
            m = LINE.match(line)
            if m:
                values[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return values


def pick(values, name, label=None):
    total = 0.0
    for (n, labels), v in values.items():
        if n == name and (label is None or label in labels):
            total += v
    return total


def rss_kib(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def main():
    url, out, interval = sys.argv[1], sys.argv[2], float(sys.argv[3])
    pid = sys.argv[4] if len(sys.argv) > 4 else None
    stop = False

    def on_term(*_):
        nonlocal stop
        stop = True
    signal.signal(signal.SIGTERM, on_term)
    with open(out, "a", buffering=1) as fh:
        next_tick = time.time()
        while not stop:
            now = time.time()
            try:
                v = scrape(url)
                d = "pgcourier_db_statement_duration_seconds"
                fh.write(" ".join(str(x) for x in (
                    round(now, 3),
                    int(pick(v, "pgcourier_deliveries_finished_total", 'status="delivered"')),
                    pick(v, d + "_sum", 'statement="claim_due"'), int(pick(v, d + "_count", 'statement="claim_due"')),
                    pick(v, d + "_sum", 'statement="record_outcomes"'),
                    int(pick(v, d + "_count", 'statement="record_outcomes"')),
                    int(pick(v, "pgcourier_claim_batch_size_sum")), int(pick(v, "pgcourier_requests_in_flight")),
                    rss_kib(pid) if pid else 0)) + "\n")
            except OSError:
                pass
            next_tick += interval
            delay = next_tick - time.time()
            if delay > 0:
                time.sleep(delay)
            else:
                next_tick = time.time()


if __name__ == "__main__":
    main()
