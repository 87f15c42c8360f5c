#!/usr/bin/env bash
# bench/drain.sh [N] [CONCURRENCY]: a first drain measurement (not yet the
# full benchmark of issue 6). Queues N events for one subscription pointing at
# nginx (keep-alive, returns 200), starts one pgcourierd, and reports
# deliveries per second from start to the last delivery, checking that the
# receiver's hit count equals N and every delivery is 'delivered'.
# Private PostgreSQL with durable settings (fsync on), nginx on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
N=${1:-20000}
CONC=${2:-256}
source bench/setup.sh

"$BUILD_DIR/pgcourierctl" subscription create --tenant bench --url "http://127.0.0.1:$port/hook" --events '*' >/dev/null
psql "$DATABASE_URL" -qc "INSERT INTO courier.events (tenant_id, event_type, payload)
  SELECT 'bench', 'bench.event', jsonb_build_object('n', g, 'pad', repeat('x', 900)) FROM generate_series(1, $N) g"
psql "$DATABASE_URL" -qc "VACUUM ANALYZE courier.deliveries"
cat > "$W/d.yaml" <<Y
worker_id: bench
policies_file: $ROOT/policies/local.yaml
metrics_address: ''
concurrency: $CONC
log_level: warn
delivery_events: ${DELIVERY_EVENTS:-all}
Y
start=$(date +%s.%N)
${BENCH_WRAP:-} "$BUILD_DIR/pgcourierd" --config "$W/d.yaml" 2> "$W/d.log" &
dpid=$!; pids+=($dpid)
while [[ $(psql "$DATABASE_URL" -qAtc "SELECT count(*) FROM courier.deliveries WHERE status <> 'delivered'") != 0 ]]; do sleep 0.05; done
end=$(date +%s.%N)
cpu=$(awk '{print ($14+$15)/100}' /proc/$dpid/stat)
rss=$(awk '/VmHWM/ {print $2}' /proc/$dpid/status)
kill -TERM $dpid; wait $dpid || true
hits=$(grep -c 'POST /hook' "$W/nginx/access.log" || true)
xacts=$(psql "$DATABASE_URL" -qAtc "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
python3 - "$N" "$start" "$end" "$hits" "$cpu" "$rss" "$CONC" <<PY
import sys
n, start, end, hits, cpu, rss, conc = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]), sys.argv[7]
t = end - start
print(f"drain: {n} deliveries, concurrency {conc}: {t:.2f} s, {n/t:,.0f} deliveries/s; receiver hits {hits} "
      f"({'OK' if hits == n else 'MISMATCH'}); daemon CPU {cpu/n*1e6:.1f} us/delivery; peak RSS {rss/1024:.1f} MiB")
PY
