#!/usr/bin/env bash
# EXPLAIN (ANALYZE, BUFFERS) of one claim of 256 and one outcome batch of 256 (all delivered), on a queue of 100,000.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${1:-$ROOT/build}; Q=$ROOT/daemon/store/queries
D=$(mktemp -d); chmod 755 $D
url=$($ROOT/tools/pg-local start $D/pg)
trap "$ROOT/tools/pg-local destroy $D/pg >/dev/null" EXIT
DATABASE_URL=$url $B/pgcourierctl migrate >/dev/null
q() { psql "$url" -qAtX -v ON_ERROR_STOP=1 "$@"; }
q -c "INSERT INTO courier.subscriptions (tenant_id, url, event_types) VALUES ('acme', 'http://127.0.0.1:1/hook', '{*}')"
q -c "INSERT INTO courier.events (tenant_id, event_type, payload) SELECT 'acme', 'bench.event', jsonb_build_object('n', g, 'pad', repeat('x', 900)) FROM generate_series(1, 100000) g"
q -c "VACUUM ANALYZE" ; q -c "CHECKPOINT"
claim=$(sed '/^--/d' $Q/claim_due.sql)
echo "== claim_due (256 rows of 100,000)"
q -c "PREPARE c(text, int, bigint, text[], bigint, text[], int[], int, text[], text[], text, bigint) AS $claim" -c "EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, SUMMARY ON) EXECUTE c('w1', 256, 60000, '{}', 1099511627776, '{}', '{}', 256, '{}', '{}', '', 1099511627776)" | grep -E "Execution Time|^  Buffers" 
# an outcome batch for the 256 claimed rows
ids=$(q -c "SELECT string_agg('\"'||delivery_id||'\"', ',') FROM courier.delivery_queue WHERE lease_owner IS NOT NULL")
n=$(q -c "SELECT count(*) FROM courier.delivery_queue WHERE lease_owner IS NOT NULL")
rep() { python3 -c "import sys; print('{' + ','.join([sys.argv[1]]*int(sys.argv[2])) + '}')" "$1" "$n"; }
rec=$(sed '/^--/d' $Q/record_outcomes.sql)
echo "== record_outcomes ($n rows, delivered)"
q -1 -c "$(sed '/^--/d' $Q/begin_outcomes.sql)" -c "PREPARE r(text, text[], int[], text[], text[], bigint[], int[], text[], text[], bool[], text[], text[], bigint[], float8[], text, bool[]) AS $rec" \
  -c "EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, SUMMARY ON) EXECUTE r('w1', '{$ids}', '$(rep 1 $n)', '$(rep w1 $n)', '$(rep delivered $n)', '$(rep NULL $n)', '$(rep 200 $n)', '$(rep delivered $n)', '$(rep NULL $n)', '$(rep f $n)', '$(rep NULL $n)', '$(rep NULL $n)', '$(rep 1800000000000000 $n)', '$(rep 1.5 $n)', 'all', '$(rep f $n)')" | grep -E "${RECORD_FILTER:-Execution Time|^  Buffers}"
echo "== relation sizes"
q -c "SELECT c.relname, pg_size_pretty(pg_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'courier' AND (c.relname LIKE 'deliver%' AND c.relname NOT LIKE 'delivery_attempts%') AND c.relkind IN ('r','i') ORDER BY 1"
echo "== whole cycle, by pg_stat_database blks_hit (triggers included): claim 256 + record 256"
hits() { q -c "SELECT blks_hit FROM pg_stat_database WHERE datname = current_database()"; }
q -c "SELECT pg_stat_force_next_flush()" >/dev/null 2>&1 || true
h0=$(hits)
q -c "PREPARE c(text, int, bigint, text[], bigint, text[], int[], int, text[], text[], text, bigint) AS $claim" -c "EXECUTE c('w2', 256, 60000, '{}', 1099511627776, '{}', '{}', 256, '{}', '{}', '', 1099511627776)" >/dev/null
sleep 1; h1=$(hits)
ids=$(q -c "SELECT string_agg('\"'||delivery_id||'\"', ',') FROM courier.delivery_queue WHERE lease_owner = 'w2'")
q -1 -c "$(sed '/^--/d' $Q/begin_outcomes.sql)" -c "PREPARE r(text, text[], int[], text[], text[], bigint[], int[], text[], text[], bool[], text[], text[], bigint[], float8[], text, bool[]) AS $rec" \
  -c "EXECUTE r('w2', '{$ids}', '$(rep 1 $n)', '$(rep w2 $n)', '$(rep delivered $n)', '$(rep NULL $n)', '$(rep 200 $n)', '$(rep delivered $n)', '$(rep NULL $n)', '$(rep f $n)', '$(rep NULL $n)', '$(rep NULL $n)', '$(rep 1800000000000000 $n)', '$(rep 1.5 $n)', 'all', '$(rep f $n)')" >/dev/null
sleep 1; h2=$(hits)
echo "claim: $((h1 - h0)) buffers, record: $((h2 - h1)) buffers (each includes a few for the surrounding statements)"
q -c "SELECT relname, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE schemaname = 'courier' AND relname IN ('deliveries', 'delivery_queue')"
