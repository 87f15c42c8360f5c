#!/usr/bin/env bash
# bench/claim_bloat.sh [SECONDS] [BATCH]: does the claim path bloat under a
# sustained run? One pgcourierd (retention_completed 1 minute, maintenance
# every second, autovacuum on) delivers to nginx while a producer keeps
# queueing BATCH events whenever fewer than BATCH/2 are waiting, for SECONDS.
# Prints, every 30 s, the size of the claim-path indexes (deliveries_due,
# deliveries_leased), of deliveries and its indexes, and how many rows the
# table holds, so growth without bound would show.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DURATION=${1:-240}
BATCH=${2:-10000}
source bench/setup.sh

"$BUILD_DIR/pgcourierctl" subscription create --tenant bench --url "http://127.0.0.1:$port/hook" --events '*' >/dev/null
cat > "$W/d.yaml" <<Y
worker_id: bloat
policies_file: $ROOT/policies/local.yaml
metrics_address: ''
log_level: warn
retention_completed: 1m
retention_dead_lettered: 1m
maintenance_interval: 1s
delivery_events: none
Y
"$BUILD_DIR/pgcourierd" --config "$W/d.yaml" 2> "$W/d.log" &
pids+=($!)

sizes() {
  psql "$DATABASE_URL" -qAtF ' ' -c "SELECT pg_relation_size('courier.deliveries_due'), pg_relation_size('courier.deliveries_leased'),
    pg_relation_size('courier.deliveries'), pg_indexes_size('courier.deliveries'),
    (SELECT count(*) FROM courier.deliveries), (SELECT count(*) FROM courier.deliveries WHERE status = 'delivered')"
}
printf '%7s %12s %12s %14s %14s %10s %12s %12s\n' seconds due_idx_KiB leased_idx_KiB table_KiB all_idx_KiB rows delivered queued_total
start=$SECONDS; next_report=0; queued=0
while (( SECONDS - start < DURATION )); do
  waiting=$(psql "$DATABASE_URL" -qAtc "SELECT count(*) FROM courier.deliveries WHERE status IN ('pending', 'delivering', 'retry_scheduled')")
  if (( waiting < BATCH / 2 )); then
    psql "$DATABASE_URL" -qc "INSERT INTO courier.events (tenant_id, event_type, payload)
      SELECT 'bench', 'bench.event', jsonb_build_object('n', g, 'pad', repeat('x', 900)) FROM generate_series(1, $BATCH) g"
    queued=$((queued + BATCH))
  fi
  if (( SECONDS - start >= next_report )); then
    read -r due leased table idx rows delivered <<<"$(sizes)"
    printf '%7d %12d %12d %14d %14d %10d %12d %12d\n' $((SECONDS - start)) $((due / 1024)) $((leased / 1024)) \
      $((table / 1024)) $((idx / 1024)) "$rows" "$delivered" "$queued"
    next_report=$((next_report + 30))
  fi
  sleep 0.2
done
read -r due leased table idx rows delivered <<<"$(sizes)"
printf '%7d %12d %12d %14d %14d %10d %12d %12d\n' $((SECONDS - start)) $((due / 1024)) $((leased / 1024)) \
  $((table / 1024)) $((idx / 1024)) "$rows" "$delivered" "$queued"
grep -iE 'error|critical' "$W/d.log" | head -5 || true
