#!/usr/bin/env bash
# bench/after_streams.sh — non-stream throughput and CPU per request on a fresh gateway and
# again after a burst of streams (issue 18). A burst leaves hundreds of idle workers (they
# retire after 60 s) and full upstream pools behind it; this shows what they cost the
# requests that follow. Runs c=C non-stream calls for DUR s twice, then STREAMS concurrent
# streams (5 events 100 ms apart), then the c=C calls twice more, all against one gateway and
# the mock on loopback.
# Knobs: C (32), DUR (3), STREAMS (1000), GATEWAY_BIN (another build), GATEWAY_ENV, SKIP_BUILD=1.
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
C=${C:-32}
DUR=${DUR:-3}
STREAMS=${STREAMS:-1000}
GATEWAY_ENV=${GATEWAY_ENV:-}

bench_workspace after

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
build_release
GATEWAY=${GATEWAY_BIN:-$BIN/llmcallgateway}

start_mock

mkdir -p "$TMP/gw"
# shellcheck disable=SC2086
(cd "$TMP/gw" && exec env HOST=127.0.0.1 PORT=0 LITELLM_BASE_URL="http://$MOCK_ADDR/v1" \
    LITELLM_API_KEY=sk-fake-bench LOG_DIR="$TMP/gw/logs" $GATEWAY_ENV "$GATEWAY") \
    >"$TMP/gw/stdout" 2>"$TMP/gw/stderr" &
GW_PID=$!
PIDS+=("$GW_PID")
GW_ADDR=$(wait_listening "$TMP/gw/stdout" "$GW_PID") || { echo "gateway did not start" >&2; exit 1; }
URL="http://$GW_ADDR/v1/chat/completions"

HZ=$(getconf CLK_TCK)

calls() {
    local label=$1 t0 t1 out n
    t0=$(cpu_ticks "$GW_PID")
    out=$("$BIN/load" run --url "$URL" --mode nonstream -c "$C" -d "$DUR" --warmup 0.2 --label "$label")
    t1=$(cpu_ticks "$GW_PID")
    n=$(jnum all_requests "$out")
    awk -v l="$label" -v rps="$(jnum rps "$out")" -v e="$(jnum errors "$out")" -v n="$n" \
        -v t=$((t1 - t0)) -v hz="$HZ" -v th="$(status_field "$GW_PID" Threads)" \
        'BEGIN { printf "  %-16s %8.0f req/s  %6.1f µs CPU/request  %4d threads  %d errors\n", l, rps, t * 1e6 / hz / n, th, e }'
}

echo "c=$C non-stream calls, $DUR s each, before and after $STREAMS concurrent streams ($GATEWAY)"
calls fresh
calls fresh
"$BIN/load" run --url "$URL" --mode stream -c "$STREAMS" -n "$STREAMS" --events 5 --ms 100 \
    --timeout 60 --label streams >/dev/null
calls after-streams
calls after-streams
