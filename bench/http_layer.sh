#!/usr/bin/env bash
# The HTTP layer alone against nginx, in one run: both answer every request with a fixed 200
# `{"status":"ok"}` on loopback. wrk drives each at concurrency 1, 32 and 256 (keep-alive);
# the table gives requests/s, p50/p99 latency and the server's CPU time per request (utime +
# stime from /proc, all threads; for nginx the master and its workers).
#
# Usage: bench/http_layer.sh            (DURATION=5s NGINX_WORKERS=2 by default)
# Needs: cargo, wrk, nginx (/usr/sbin/nginx), python3 (to pick a free port).
set -euo pipefail

cd "$(dirname "$0")/.."
DURATION=${DURATION:-5s}
NGINX_WORKERS=${NGINX_WORKERS:-2}
NGINX=${NGINX:-/usr/sbin/nginx}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
CLK_TCK=$(getconf CLK_TCK)

command -v wrk >/dev/null || { echo "wrk is not installed" >&2; exit 1; }
[ -x "$NGINX" ] || { echo "nginx is not at $NGINX" >&2; exit 1; }

cargo build --release --quiet --example http_bench_server
BIN="$TARGET_DIR/release/examples/http_bench_server"

WORK=$(mktemp -d)
LAYER_PID=""
NGINX_PID=""
cleanup() {
    set +e
    for pid in $LAYER_PID $NGINX_PID; do
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# --- the layer -----------------------------------------------------------------------------
"$BIN" >"$WORK/layer.out" 2>"$WORK/layer.err" &
LAYER_PID=$!
for _ in $(seq 100); do
    grep -q 'listening on http://' "$WORK/layer.out" 2>/dev/null && break
    sleep 0.1
done
LAYER_URL=$(sed -n 's/.*listening on \(http:\/\/[^ ]*\).*/\1/p' "$WORK/layer.out" | head -1)
[ -n "$LAYER_URL" ] || { echo "the bench server did not start" >&2; cat "$WORK/layer.err" >&2; exit 1; }

# --- nginx ---------------------------------------------------------------------------------
NGINX_PORT=$(free_port)
cat >"$WORK/nginx.conf" <<EOF
worker_processes $NGINX_WORKERS;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $WORK/body;
    proxy_temp_path $WORK/proxy;
    fastcgi_temp_path $WORK/fastcgi;
    uwsgi_temp_path $WORK/uwsgi;
    scgi_temp_path $WORK/scgi;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            default_type application/json;
            return 200 '{"status":"ok"}';
        }
    }
}
EOF
"$NGINX" -p "$WORK" -c "$WORK/nginx.conf" -e "$WORK/nginx-error.log" &
NGINX_PID=$!
NGINX_URL="http://127.0.0.1:$NGINX_PORT"
for _ in $(seq 100); do
    curl -s -o /dev/null "$NGINX_URL/health" 2>/dev/null && break
    (exec 3<>/dev/tcp/127.0.0.1/"$NGINX_PORT") 2>/dev/null && break
    sleep 0.1
done

# CPU ticks (utime + stime) of a process and its direct children.
cpu_ticks() {
    local total=0 pid
    for pid in "$1" $(pgrep -P "$1" || true); do
        [ -r "/proc/$pid/stat" ] || continue
        # Fields after the command name: utime is 14th, stime 15th of the whole line.
        total=$((total + $(sed 's/^.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}')))
    done
    echo "$total"
}

# wrk latency figure → microseconds.
to_us() {
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); printf "%.0f", v }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.0f", v * 1000 }
        else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.0f", v * 1000000 }
        else printf "%s", v }'
}

ROWS=()
run() {
    local name=$1 url=$2 pid=$3 threads=$4 conns=$5
    local before after out reqs rps p50 p99 cpu_us
    before=$(cpu_ticks "$pid")
    out=$(wrk -t"$threads" -c"$conns" -d"$DURATION" --latency "$url/health")
    after=$(cpu_ticks "$pid")
    reqs=$(echo "$out" | awk '/requests in/ {print $1}')
    rps=$(echo "$out" | awk '/Requests\/sec/ {printf "%.0f", $2}')
    p50=$(to_us "$(echo "$out" | awk '$1 == "50%" {print $2}')")
    p99=$(to_us "$(echo "$out" | awk '$1 == "99%" {print $2}')")
    cpu_us=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v n="$reqs" \
        'BEGIN { if (n > 0) printf "%.1f", t / hz * 1e6 / n; else print "-" }')
    if echo "$out" | grep -q 'Non-2xx\|Socket errors'; then
        echo "$name c=$conns: $(echo "$out" | grep 'Non-2xx\|Socket errors')" >&2
    fi
    ROWS+=("$(printf '%-6s %5s %10s %9s %9s %12s' "$name" "$conns" "$rps" "$p50" "$p99" "$cpu_us")")
    eval "RPS_${name}_${conns}=$rps"
}

# Warm up both (the layer starts its worker threads on demand).
wrk -t2 -c256 -d1s "$LAYER_URL/health" >/dev/null
wrk -t2 -c256 -d1s "$NGINX_URL/health" >/dev/null

for spec in "1 1" "2 32" "2 256"; do
    set -- $spec
    run layer "$LAYER_URL" "$LAYER_PID" "$1" "$2"
    run nginx "$NGINX_URL" "$NGINX_PID" "$1" "$2"
done

echo
echo "HTTP layer vs nginx (worker_processes $NGINX_WORKERS), fixed 200 JSON, wrk ${DURATION} per row, $(nproc) cores"
printf '%-6s %5s %10s %9s %9s %12s\n' server conns "req/s" "p50 us" "p99 us" "cpu us/req"
for row in "${ROWS[@]}"; do echo "$row"; done
echo
for c in 1 32 256; do
    eval "l=\$RPS_layer_$c; n=\$RPS_nginx_$c"
    awk -v l="$l" -v n="$n" -v c="$c" 'BEGIN { printf "concurrency %3d: layer/nginx = %.0f%%\n", c, 100 * l / n }'
done
