#!/usr/bin/env bash
# bench/memory.sh — the gateway's memory under many open streams or idle connections (issue 18).
#
# Starts mock-upstream and the gateway on free loopback ports, then either holds STREAMS slow
# streams open at once (SLOW_EVENTS events SLOW_MS ms apart, all started together) or, with
# IDLE=N, N idle keep-alive connections (each made one request) while one client runs for DUR s.
# Samples the gateway's RSS, threads and fds every 0.1 s and prints the peak, the RSS per open
# stream/connection above idle, and where the resident memory was at its peak
# (bench/smaps_breakdown.py: thread stacks, malloc arenas, main heap, other).
# Knobs: STREAMS (1000), SLOW_EVENTS (100), SLOW_MS (100), IDLE (0), DUR (5), ESTIMATE=1 (one
# token estimate before measuring, /v1/messages/count_tokens: the encoding it builds stays),
# GATEWAY_ENV (extra VAR=value words, e.g. "MALLOC_ARENA_MAX=2"), GATEWAY_BIN (another build to
# measure), SKIP_BUILD=1.
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
STREAMS=${STREAMS:-1000}
SLOW_EVENTS=${SLOW_EVENTS:-100}
SLOW_MS=${SLOW_MS:-100}
IDLE=${IDLE:-0}
DUR=${DUR:-5}
GATEWAY_ENV=${GATEWAY_ENV:-}

bench_workspace mem
log() { echo "[memory] $*" >&2; }

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
build_release

start_mock
mkdir -p "$TMP/gw/logs"
# Room for every stream: a worker each (WORKERS) and a connection each (MAX_CONNECTIONS);
# idle connections are kept for the whole run. GATEWAY_ENV comes last and wins.
# shellcheck disable=SC2086
(cd "$TMP/gw" && exec env HOST=127.0.0.1 PORT=0 LITELLM_BASE_URL="http://$MOCK_ADDR/v1" \
    LITELLM_API_KEY=sk-fake-bench LOG_DIR="$TMP/gw/logs" LOG_LEVEL=warn \
    WORKERS=$((STREAMS + 16)) MAX_CONNECTIONS=$((STREAMS + IDLE + 64)) KEEPALIVE_IDLE_SECS=120 \
    $GATEWAY_ENV "${GATEWAY_BIN:-$BIN/llmcallgateway}") >"$TMP/gw/stdout" 2>"$TMP/gw/stderr" &
GW_PID=$!
PIDS+=("$GW_PID")
GW_ADDR=$(wait_listening "$TMP/gw/stdout" "$GW_PID") || { tail "$TMP/gw/stderr" >&2; exit 1; }
URL="http://$GW_ADDR/v1/chat/completions"
"$BIN/load" run --url "$URL" -n 1 --timeout 10 >/dev/null
if [[ ${ESTIMATE:-0} == 1 ]]; then
    curl -sf "http://$GW_ADDR/v1/messages/count_tokens" -H 'content-type: application/json' \
        -d '{"model":"mock/echo","messages":[{"role":"user","content":"How many tokens?"}]}' >/dev/null
fi
sleep 0.5
IDLE_RSS=$(status_field "$GW_PID" VmRSS)
IDLE_THREADS=$(status_field "$GW_PID" Threads)
IDLE_FDS=$(find "/proc/$GW_PID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
IDLE_BREAKDOWN=$(python3 "$ROOT/bench/smaps_breakdown.py" "$GW_PID")

if ((IDLE > 0)); then
    what="$IDLE idle keep-alive connections (+1 client for ${DUR}s)"
    "$BIN/load" run --url "$URL" --mode nonstream -c 1 -d "$DUR" --warmup 0 --idle "$IDLE" \
        --timeout 30 >"$TMP/load.json" &
    OPEN=$IDLE
else
    what="$STREAMS slow streams ($SLOW_EVENTS events, one per $SLOW_MS ms)"
    "$BIN/load" run --url "$URL" --mode stream -c "$STREAMS" -n "$STREAMS" --events "$SLOW_EVENTS" \
        --ms "$SLOW_MS" --timeout 60 >"$TMP/load.json" &
    OPEN=$STREAMS
fi
LOAD_PID=$!
PIDS+=("$LOAD_PID")
log "$what through the gateway (pid $GW_PID) ${GATEWAY_ENV:+with $GATEWAY_ENV}"
PEAK=0 PEAK_T=0 PEAK_F=0 BREAKDOWN="" last=0
while kill -0 "$LOAD_PID" 2>/dev/null; do
    r=$(status_field "$GW_PID" VmRSS)
    t=$(status_field "$GW_PID" Threads)
    f=$(find "/proc/$GW_PID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
    ((${t:-0} > PEAK_T)) && PEAK_T=$t
    ((${f:-0} > PEAK_F)) && PEAK_F=$f
    if ((${r:-0} > PEAK)); then
        PEAK=$r
        # A breakdown at most every second while the peak climbs (reading smaps costs CPU).
        now=$(date +%s)
        if ((now > last)); then
            BREAKDOWN=$(python3 "$ROOT/bench/smaps_breakdown.py" "$GW_PID" 2>/dev/null || true)
            last=$now
        fi
    fi
    sleep 0.1
done
wait "$LOAD_PID" || true
OUT=$(cat "$TMP/load.json")
sleep 1
AFTER=$(status_field "$GW_PID" VmRSS)
echo "gateway memory: $what ${GATEWAY_ENV:+($GATEWAY_ENV)}"
# Streams open at once: two descriptors each (the client's connection and the provider's), so
# the peak descriptor count above idle says how many were (a burst larger than the machine can
# start at once never has all of them open). Not threads: the relay loop carries streams on a
# few threads, and the workers that started them are not one per stream.
((IDLE == 0)) && OPEN=$(((PEAK_F - IDLE_FDS) / 2))
printf '  idle RSS %.1f MB (%s threads); peak RSS %.1f MB (%s threads, %s fds); %.1f KB per open %s above idle (%s open at the peak); RSS 1 s after %.1f MB\n' \
    "$(awk -v k="$IDLE_RSS" 'BEGIN{print k/1024}')" "$IDLE_THREADS" "$(awk -v k="$PEAK" 'BEGIN{print k/1024}')" \
    "$PEAK_T" "$PEAK_F" "$(awk -v p="$PEAK" -v i="$IDLE_RSS" -v n="$OPEN" 'BEGIN{print (p-i)/n}')" \
    "$( ((IDLE > 0)) && echo connection || echo stream)" "$OPEN" "$(awk -v k="$AFTER" 'BEGIN{print k/1024}')"
echo "  load: $(jnum requests "$OUT") requests, $(jnum errors "$OUT") errors $(sed -n 's/.*"error_kinds":\({[^}]*}\).*/\1/p' <<<"$OUT"), p50 $(jnum p50_us "$OUT") µs, first event p99 $(jnum ttfe_p99_us "$OUT") µs"
echo "  idle breakdown: $IDLE_BREAKDOWN"
echo "  peak breakdown (last sample while climbing): $BREAKDOWN"
