# bench/setup.sh: sourced by the single-scenario bench scripts. Starts, in a
# fresh work folder $W, a private PostgreSQL with durable settings (fsync on)
# with the schema migrated and a master key, and nginx on 127.0.0.1:$port
# answering 200 to POST /hook with keep-alive. Everything is removed on exit.
command -v nginx >/dev/null || { echo "bench needs nginx-light (apt-get install nginx-light)" >&2; exit 1; }
BUILD_DIR=${BUILD_DIR:-build}
W=$(mktemp -d /tmp/pgcourier-bench.XXXXXX); chmod 755 "$W"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; tools/pg-local destroy "$W/pg" >/dev/null 2>&1; [[ -f "$W/nginx.pid" ]] && kill "$(cat "$W/nginx.pid")" 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT

export DATABASE_URL=$(tools/pg-local start "$W/pg")
"$BUILD_DIR/pgcourierctl" migrate >/dev/null
"$BUILD_DIR/pgcourierctl" keygen --out "$W/key" >/dev/null
export PGCOURIER_MASTER_KEY_FILE="$W/key"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$W/nginx"
cat > "$W/nginx.conf" <<NGX
worker_processes 1;
pid $W/nginx.pid;
error_log $W/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log $W/nginx/access.log;
  client_body_temp_path $W/nginx;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$port; location = /hook { return 200; } }
}
NGX
nginx -c "$W/nginx.conf"
