#!/usr/bin/env bash
# bench/run.sh — the gateway load benchmark (issue 3).
#
# Builds the gateway (release) and the bench tools, starts mock-upstream, nginx (a plain reverse
# proxy to the mock) and the gateway (in front of the mock) on free loopback ports, runs the same
# load directly to the mock, through nginx and through the gateway, and prints one table plus the
# memory and startup figures. Everything is on 127.0.0.1, every run is bounded in time, and every
# process started here is stopped on exit.
#
# Knobs (environment): DUR (s per run, 5), WARMUP (s, 0.5), CONCURRENCY ("1 32 256"),
# FAST_EVENTS (10), PACED_C (256), PACED_EVENTS (20), PACED_MS (50), SLOW_STREAMS (1000),
# SLOW_EVENTS (100), SLOW_MS (100), NGINX_WORKERS (auto), GATEWAY_ENV (extra VAR=value words for
# the gateway, e.g. "WORKERS=256 LOG_LEVEL=warn"), GATEWAY_BIN (another build of the gateway to
# measure, e.g. the last release), SKIP_BUILD=1, KEEP_TMP=1, QUICK=1 (1 s runs).
# Issue 18's rows: IDLE_CONNS (1000: keep-alive connections held idle while a new client is
# measured, row "idleN"), BURST (1000 streams opened at once, BURST_EVENTS 20 events BURST_MS
# 250 ms apart, row "burst"), EVENT_C/EVENT_N (100 streams × 100 events, row "events": CPU per
# relayed event), EVENT_MS (0: events back to back for DUR seconds; above 0: each of EVENT_C
# streams once, its events EVENT_MS apart, so that every event wakes the proxy on its own, as
# a model's tokens do). SCALE_ONLY=1 runs only these rows.
# Every row gives the proxy's CPU per request and its context switches per request (threads
# put to sleep or woken; the events rows give both per event).
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
DUR=${DUR:-5}
WARMUP=${WARMUP:-0.5}
if [[ ${QUICK:-0} == 1 ]]; then DUR=1; WARMUP=0.2; fi
CONCURRENCY=${CONCURRENCY:-"1 32 256"}
FAST_EVENTS=${FAST_EVENTS:-10}
PACED_C=${PACED_C:-256}
PACED_EVENTS=${PACED_EVENTS:-20}
PACED_MS=${PACED_MS:-50}
SLOW_STREAMS=${SLOW_STREAMS:-1000}
SLOW_EVENTS=${SLOW_EVENTS:-100}
SLOW_MS=${SLOW_MS:-100}
NGINX_WORKERS=${NGINX_WORKERS:-auto}
NGINX=${NGINX:-/usr/sbin/nginx}
GATEWAY_ENV=${GATEWAY_ENV:-}
IDLE_CONNS=${IDLE_CONNS:-1000}
BURST=${BURST:-1000}
BURST_EVENTS=${BURST_EVENTS:-20}
BURST_MS=${BURST_MS:-250}
EVENT_C=${EVENT_C:-100}
EVENT_N=${EVENT_N:-100}
EVENT_MS=${EVENT_MS:-0}
SCALE_ONLY=${SCALE_ONLY:-0}
# OHA=/path/to/oha: also the c=32 chat rows with oha (https://crates.io/crates/oha) as the load
# generator, OHA_ROUNDS rounds of DUR seconds alternating direct, nginx and gateway.
OHA=${OHA:-}
OHA_ROUNDS=${OHA_ROUNDS:-3}

TMP=$(mktemp -d /tmp/llmcg-bench.XXXXXX)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${PIDS[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    if [[ ${KEEP_TMP:-0} == 1 ]]; then
        echo "kept $TMP" >&2
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "[bench] $*" >&2; }

# --- build -------------------------------------------------------------------------------------
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[[ ${SKIP_BUILD:-0} == 1 ]] || log "building the gateway (release) and the bench tools"
build_release
GATEWAY=${GATEWAY_BIN:-$BIN/llmcallgateway}
MOCK=$BIN/mock-upstream
LOAD=$BIN/load
for b in "$MOCK" "$LOAD"; do
    [[ -x $b ]] || { echo "missing $b" >&2; exit 1; }
done
HAVE_GATEWAY=1
[[ -x $GATEWAY ]] || { log "no gateway binary at $GATEWAY: gateway rows skipped"; HAVE_GATEWAY=0; }

# --- helpers -----------------------------------------------------------------------------------

# Waits until a TCP port accepts.
wait_port() {
    local port=$1 i
    for ((i = 0; i < 1000; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.01
    done
    return 1
}

jkinds() { sed -n 's/.*"error_kinds":{\([^}]*\)}.*/\1/p' <<<"$1"; }

# Context switches (voluntary and involuntary) of every thread of the given processes: each is
# a thread put to sleep or woken, the cost a thread-per-stream relay pays per event and an
# event loop shares among the events one epoll_wait returns.
ctx_switches() {
    local p
    for p in "$@"; do
        # A thread that ends between the glob and the read is skipped, not an error.
        cat /proc/"$p"/task/*/status 2>/dev/null || true
    done | awk '/^(non)?voluntary_ctxt_switches:/ { n += $2 } END { print n + 0 }'
}
proc_tree() {
    local p=$1
    echo "$p"
    cat /proc/"$p"/task/*/children 2>/dev/null | tr ' ' '\n' | grep -E '^[0-9]+$' || true
}
HZ=$(getconf CLK_TCK)

# --- mock upstream -----------------------------------------------------------------------------
"$MOCK" --port 0 >"$TMP/mock.out" 2>"$TMP/mock.err" &
MOCK_PID=$!
PIDS+=("$MOCK_PID")
MOCK_ADDR=$(wait_listening "$TMP/mock.out" "$MOCK_PID") || { echo "mock-upstream did not start" >&2; exit 1; }
log "mock-upstream on $MOCK_ADDR (pid $MOCK_PID)"

# --- nginx -------------------------------------------------------------------------------------
NGINX_PORT=$("$LOAD" free-port)
mkdir -p "$TMP/nginx/logs"
cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes $NGINX_WORKERS;
worker_rlimit_nofile 65536;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/logs/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    tcp_nodelay on;
    upstream mock {
        server $MOCK_ADDR;
        keepalive 1024;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT backlog=4096;
        location / {
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout 120s;
        }
    }
}
EOF
"$NGINX" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" 2>"$TMP/nginx/stderr" &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
wait_port "$NGINX_PORT" || { echo "nginx did not start:" >&2; cat "$TMP/nginx/stderr" >&2; exit 1; }
sleep 0.2
NGINX_PROCS=$(proc_tree "$NGINX_PID" | tr '\n' ' ')
log "nginx on 127.0.0.1:$NGINX_PORT (worker_processes $NGINX_WORKERS; pids $NGINX_PROCS)"

# --- gateway -----------------------------------------------------------------------------------
mkdir -p "$TMP/gw/logs"
gateway_env() {
    # shellcheck disable=SC2086
    env HOST=127.0.0.1 PORT=0 LITELLM_BASE_URL="http://$MOCK_ADDR/v1" LITELLM_API_KEY=sk-fake-bench \
        LOG_DIR="$TMP/gw/logs" $GATEWAY_ENV "$@"
}
GW_PID=""
if [[ $HAVE_GATEWAY == 1 ]]; then
    (cd "$TMP/gw" && exec env HOST=127.0.0.1 PORT=0 LITELLM_BASE_URL="http://$MOCK_ADDR/v1" \
        LITELLM_API_KEY=sk-fake-bench LOG_DIR="$TMP/gw/logs" $GATEWAY_ENV "$GATEWAY") \
        >"$TMP/gw/stdout" 2>"$TMP/gw/stderr" &
    GW_PID=$!
    PIDS+=("$GW_PID")
    if GW_ADDR=$(wait_listening "$TMP/gw/stdout" "$GW_PID"); then
        log "gateway on $GW_ADDR (pid $GW_PID) ${GATEWAY_ENV:+with $GATEWAY_ENV}"
        probe=$("$LOAD" run --url "http://$GW_ADDR/v1/chat/completions" -n 1 --timeout 10)
        if [[ $(jnum errors "$probe") != 0 ]]; then
            log "gateway probe failed: $probe"
            tail -5 "$TMP/gw/stderr" >&2 || true
        fi
        sleep 0.5
        IDLE_RSS_KB=$(status_field "$GW_PID" VmRSS)
        IDLE_THREADS=$(status_field "$GW_PID" Threads)
    else
        log "gateway did not start: gateway rows skipped"
        tail -20 "$TMP/gw/stderr" >&2 || true
        HAVE_GATEWAY=0
    fi
fi

# --- load runs ---------------------------------------------------------------------------------
RESULTS=$TMP/results.tsv
: >"$RESULTS"
# Pins every server process (all threads) and the load client to CPUS, or undoes it.
ALL_CPUS="0-$(($(nproc) - 1))"
PIN=""
pin_servers() {
    local p
    # shellcheck disable=SC2086
    for p in $MOCK_PID $NGINX_PROCS $GW_PID; do
        taskset -a -p -c "$1" "$p" >/dev/null 2>&1 || true
    done
}

# run_one TARGET C MODE LOAD-ARGS...  (C may be "1@cpu0": one connection, everything on CPU 0)
run_one() {
    local target=$1 label=$2 mode=$3
    shift 3
    local c=${label%%@*}
    local url procs
    case $target in
        direct) url="http://$MOCK_ADDR"; procs=$MOCK_PID ;;
        nginx) url="http://127.0.0.1:$NGINX_PORT"; procs=$NGINX_PROCS ;;
        gateway) url="http://$GW_ADDR"; procs=$GW_PID ;;
    esac
    local path=/v1/chat/completions
    [[ $mode == get ]] && path=/health
    local t0 t1 s0 s1 out
    # shellcheck disable=SC2086
    t0=$(cpu_ticks $procs)
    # shellcheck disable=SC2086
    s0=$(ctx_switches $procs)
    out=$($PIN "$LOAD" run --url "$url$path" -c "$c" -d "$DUR" --warmup "$WARMUP" --label "$target" "$@")
    # shellcheck disable=SC2086
    t1=$(cpu_ticks $procs)
    # shellcheck disable=SC2086
    s1=$(ctx_switches $procs)
    local n rps p50 p99 ttfe err kinds cpu switches
    n=$(jnum requests "$out")
    rps=$(jnum rps "$out")
    p50=$(jnum p50_us "$out")
    p99=$(jnum p99_us "$out")
    ttfe=$(jnum ttfe_p50_us "$out")
    err=$(jnum errors "$out")
    kinds=$(jkinds "$out")
    # The CPU delta spans the warm-up too, so divide by every request answered, warm-up included.
    cpu=$(awk -v d=$((t1 - t0)) -v hz="$HZ" -v r="$(jnum all_requests "$out")" \
        'BEGIN { if (r > 0) printf "%.1f", d / hz * 1e6 / r; else print "-" }')
    # Only live threads report their switches: the mock's thread per connection is gone by
    # the end of a run, so direct rows have none.
    switches=$(awk -v d=$((s1 - s0)) -v r="$(jnum all_requests "$out")" -v t="$target" \
        'BEGIN { if (r > 0 && t != "direct") printf "%.2f", d / r; else print "-" }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$target" "$label" "$mode" "$n" "$rps" "$p50" \
        "$p99" "$ttfe" "$err" "$cpu" "${kinds:-}" "$switches" >>"$RESULTS"
    log "$(printf '%-8s c=%-4s %-9s %9s req/s p50 %8s µs p99 %9s µs errors %s %s' \
        "$target" "$label" "$mode" "$rps" "$p50" "$p99" "$err" "${kinds:-}")"
}

TARGETS="direct nginx"
[[ $HAVE_GATEWAY == 1 ]] && TARGETS="$TARGETS gateway"
[[ $SCALE_ONLY == 1 ]] && CONCURRENCY=""
for c in $CONCURRENCY; do
    for mode in nonstream stream; do
        for target in $TARGETS; do
            if [[ $mode == stream ]]; then
                run_one "$target" "$c" stream --mode stream --events "$FAST_EVENTS" --ms 0
            else
                run_one "$target" "$c" nonstream --mode nonstream
            fi
        done
    done
done
for target in $TARGETS; do
    [[ $SCALE_ONLY == 1 ]] || run_one "$target" 32 get --mode get
done
# c=1 once more with every process on CPU 0: on a VM a wake-up across cores costs tens of µs
# and where the scheduler puts each thread changes from run to run; on one core the added
# latency is the proxy's own work plus two context switches.
if [[ " $CONCURRENCY " == *" 1 "* ]]; then
    pin_servers 0
    PIN="taskset -c 0"
    for mode in nonstream stream; do
        for target in $TARGETS; do
            if [[ $mode == stream ]]; then
                run_one "$target" 1@cpu0 stream --mode stream --events "$FAST_EVENTS" --ms 0
            else
                run_one "$target" 1@cpu0 nonstream --mode nonstream
            fi
        done
    done
    PIN=""
    pin_servers "$ALL_CPUS"
fi
for target in $TARGETS; do
    [[ $SCALE_ONLY == 1 ]] ||
        run_one "$target" "$PACED_C" paced --mode stream --events "$PACED_EVENTS" --ms "$PACED_MS"
done
# Issue 18: a new client's latency among idle keep-alive pools; a burst of streams opened at
# once (TTFB and total time); CPU per relayed event.
for target in $TARGETS; do
    run_one "$target" 1 "idle$IDLE_CONNS" --mode nonstream --idle "$IDLE_CONNS"
done
for target in $TARGETS; do
    run_one "$target" "$BURST" burst --mode stream -n "$BURST" --events "$BURST_EVENTS" \
        --ms "$BURST_MS" --warmup 0 --timeout 60
done
for target in $TARGETS; do
    if [[ $EVENT_MS == 0 ]]; then
        run_one "$target" "$EVENT_C" events --mode stream --events "$EVENT_N" --ms 0
    else
        run_one "$target" "$EVENT_C" events --mode stream -n "$EVENT_C" --events "$EVENT_N" \
            --ms "$EVENT_MS" --warmup 0 --timeout 120
    fi
done

# --- c=32 chat with oha as the load generator (issue 18) -------------------------------------
OHA_RESULTS=$TMP/oha.tsv
if [[ -n $OHA ]]; then
    body='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello."}],"max_tokens":16}'
    for round in $(seq "$OHA_ROUNDS"); do
        for target in $TARGETS; do
            case $target in
                direct) url="http://$MOCK_ADDR/v1/chat/completions" ;;
                nginx) url="http://127.0.0.1:$NGINX_PORT/v1/chat/completions" ;;
                gateway) url="http://$GW_ADDR/v1/chat/completions" ;;
            esac
            "$OHA" -z "${DUR}s" -w -c 32 --no-tui --output-format json -m POST \
                -H 'content-type: application/json' -H 'authorization: Bearer sk-fake-bench' \
                -d "$body" "$url" >"$TMP/oha.json"
            # req/s, answers 200, other answers and errors
            rps=$(python3 - "$TMP/oha.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
codes = d.get("statusCodeDistribution", {})
bad = sum(v for k, v in codes.items() if k != "200") + sum(d.get("errorDistribution", {}).values())
print(f'{d["summary"]["requestsPerSec"]:.0f}\t{codes.get("200", 0)}\t{bad}')
PY
)
            printf '%s\t%s\t%s\n' "$round" "$target" "$rps" >>"$OHA_RESULTS"
            log "oha round $round $target: $rps"
        done
    done
fi

# --- 1,000 slow streams through the gateway ----------------------------------------------------
SLOW_OUT=""
PEAK_RSS=0
PEAK_THREADS=0
PEAK_FDS=0
if [[ $HAVE_GATEWAY == 1 && $SCALE_ONLY != 1 ]]; then
    log "$SLOW_STREAMS concurrent slow streams ($SLOW_EVENTS events, one per $SLOW_MS ms) through the gateway"
    "$LOAD" run --url "http://$GW_ADDR/v1/chat/completions" --mode stream -c "$SLOW_STREAMS" \
        -n "$SLOW_STREAMS" --events "$SLOW_EVENTS" --ms "$SLOW_MS" --timeout 60 --label slow \
        >"$TMP/slow.json" &
    SLOW_PID=$!
    PIDS+=("$SLOW_PID")
    while kill -0 "$SLOW_PID" 2>/dev/null; do
        r=$(status_field "$GW_PID" VmRSS)
        t=$(status_field "$GW_PID" Threads)
        f=$(find "/proc/$GW_PID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
        ((${r:-0} > PEAK_RSS)) && PEAK_RSS=$r
        ((${t:-0} > PEAK_THREADS)) && PEAK_THREADS=$t
        ((${f:-0} > PEAK_FDS)) && PEAK_FDS=$f
        sleep 0.1
    done
    wait "$SLOW_PID" || true
    SLOW_OUT=$(cat "$TMP/slow.json")
    sleep 1
    AFTER_RSS_KB=$(status_field "$GW_PID" VmRSS)
    AFTER_THREADS=$(status_field "$GW_PID" Threads)
fi

# --- start to ready ----------------------------------------------------------------------------
STARTUP=""
if [[ $HAVE_GATEWAY == 1 ]]; then
    log "start-to-ready (5 runs, GET /health polled every 1 ms)"
    STARTUP=$(cd "$TMP/gw" && gateway_env "$LOAD" startup --runs 5 --settle-ms 300 -- "$GATEWAY")
fi

# --- the table ---------------------------------------------------------------------------------
echo
echo "LLMCallGateway load benchmark — $(date -u +%FT%TZ), $(nproc) cores, $(uname -r)"
echo "gateway $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?') ${GATEWAY_ENV:+($GATEWAY_ENV)}, nginx $("$NGINX" -v 2>&1 | sed 's|.*/||') worker_processes $NGINX_WORKERS, ${DUR}s per run after ${WARMUP}s warm-up"
echo "stream = $FAST_EVENTS events, no pause; paced = $PACED_EVENTS events $PACED_MS ms apart; get = GET /health"
echo "CPU µs/req and switches/req (context switches of all threads): the mock's for direct rows, nginx's (all workers) or the gateway's otherwise"
echo
awk -F'\t' '
{ key = $2 SUBSEP $3; row[NR] = $0; if ($1 == "direct") { drps[key] = $5; dp50[key] = $6 } }
END {
    printf "%-8s %5s %-9s %10s %9s %9s %10s %8s %9s %8s %9s %7s  %s\n", "target", "c", "mode", "req/s", "p50 ms", "p99 ms", "+p50 ms", "ratio", "ttfe ms", "CPU µs", "switches", "errors", "error kinds"
    for (i = 1; i <= NR; i++) {
        split(row[i], f, "\t"); key = f[2] SUBSEP f[3]
        added = (f[1] == "direct") ? "-" : sprintf("%+.3f", (f[6] - dp50[key]) / 1000)
        ratio = (f[1] == "direct" || drps[key] == 0) ? "-" : sprintf("%.3f", f[5] / drps[key])
        ttfe = (f[8] + 0 > 0) ? sprintf("%.3f", f[8] / 1000) : "-"
        printf "%-8s %5s %-9s %10.0f %9.3f %9.3f %10s %8s %9s %8s %9s %7s  %s\n", f[1], f[2], f[3], f[5], f[6] / 1000, f[7] / 1000, added, ratio, ttfe, f[10], f[12], f[9], f[11]
    }
}' "$RESULTS"
echo
# CPU per relayed event: the proxy's CPU per request of the "events" rows over its events.
awk -F'\t' -v n="$EVENT_N" -v ms="$EVENT_MS" '$3 == "events" && $10 != "-" {
    sw = ($12 == "-") ? "" : sprintf(", %.2f context switches", $12 / n)
    printf "CPU per relayed event (%s streams × %s events, %s ms apart): %-8s %.1f µs%s\n", $2, n, ms, $1, $10 / n, sw
}' "$RESULTS"
echo
if [[ $HAVE_GATEWAY == 1 && $SCALE_ONLY != 1 ]]; then
    echo "gateway memory and startup"
    printf '  idle RSS after start            %8.1f MB  (%s threads)\n' "$(awk -v k="$IDLE_RSS_KB" 'BEGIN{print k/1024}')" "$IDLE_THREADS"
    printf '  peak RSS, %s slow streams     %8.1f MB  (%s threads, %s fds)\n' "$SLOW_STREAMS" "$(awk -v k="$PEAK_RSS" 'BEGIN{print k/1024}')" "$PEAK_THREADS" "$PEAK_FDS"
    printf '  RSS 1 s after the slow streams  %8.1f MB  (%s threads)\n' "$(awk -v k="$AFTER_RSS_KB" 'BEGIN{print k/1024}')" "$AFTER_THREADS"
    printf '  slow streams: %s completed, %s errors %s, p50 %.2f s, p99 %.2f s, first event p99 %.1f ms\n' \
        "$(jnum requests "$SLOW_OUT")" "$(jnum errors "$SLOW_OUT")" "{$(jkinds "$SLOW_OUT")}" \
        "$(awk -v v="$(jnum p50_us "$SLOW_OUT")" 'BEGIN{print v/1e6}')" \
        "$(awk -v v="$(jnum p99_us "$SLOW_OUT")" 'BEGIN{print v/1e6}')" \
        "$(awk -v v="$(jnum ttfe_p99_us "$SLOW_OUT")" 'BEGIN{print v/1e3}')"
    printf '  start to first 200 on /health   min %s ms, median %s ms, max %s ms (%s runs, %s failed; RSS when ready %s kB)\n' \
        "$(jnum ready_ms_min "$STARTUP")" "$(jnum ready_ms_median "$STARTUP")" "$(jnum ready_ms_max "$STARTUP")" \
        "$(jnum runs "$STARTUP")" "$(jnum failures "$STARTUP")" "$(jnum ready_rss_kb_median "$STARTUP")"
    echo
    # --- the issue's targets -------------------------------------------------------------------
    echo "targets (issue 3)"
    awk -F'\t' -v idle="$IDLE_RSS_KB" -v peak="$PEAK_RSS" -v slowerr="$(jnum errors "$SLOW_OUT")" \
        -v slown="$(jnum requests "$SLOW_OUT")" -v slowwant="$SLOW_STREAMS" \
        -v ready="$(jnum ready_ms_median "$STARTUP")" -v pc="$PACED_C" '
    { k = $1 SUBSEP $2 SUBSEP $3; rps[k] = $5; p50[k] = $6; cpu[k] = $10; err[k] = $9 }
    function verdict(ok) { return ok ? "met   " : "MISSED" }
    END {
        for (cc = 1; cc <= 2; cc++) {
            c1 = (cc == 1) ? "1" : "1@cpu0"
            if (!(("direct", c1, "nonstream") in p50)) continue
            for (m = 1; m <= 2; m++) {
                mode = (m == 1) ? "nonstream" : "stream"
                gadd = (p50["gateway", c1, mode] - p50["direct", c1, mode]) / 1000
                nadd = (p50["nginx", c1, mode] - p50["direct", c1, mode]) / 1000
                printf "  %s added p50 at c=%s within 0.1 ms of nginx (%s): gateway %+.3f ms, nginx %+.3f ms, gap %+.3f ms\n", verdict(gadd - nadd <= 0.1), c1, mode, gadd, nadd, gadd - nadd
            }
        }
        for (m = 1; m <= 2; m++) {
            mode = (m == 1) ? "nonstream" : "stream"
            gr = rps["gateway", 32, mode] / rps["direct", 32, mode]
            nr = rps["nginx", 32, mode] / rps["direct", 32, mode]
            printf "  %s req/s ratio at c=32 >= half of nginx (%s): gateway %.3f, nginx %.3f, needed %.3f\n", verdict(gr >= nr / 2), mode, gr, nr, nr / 2
        }
        for (m = 1; m <= 2; m++) {
            mode = (m == 1) ? "nonstream" : "stream"
            worst = 0; wk = ""
            for (k in cpu) { split(k, f, SUBSEP); if (f[1] == "gateway" && f[3] == mode && cpu[k] + 0 > worst) { worst = cpu[k] + 0; wk = f[2] } }
            printf "  %s CPU per proxied request <= 60 us (%s): worst %.1f us (c=%s)\n", verdict(worst <= 60), mode, worst, wk
        }
        printf "  %s paced streams at c=%s with zero errors: %s errors\n", verdict(err["gateway", pc, "paced"] == 0), pc, err["gateway", pc, "paced"]
        printf "  %s %s slow streams, zero errors, RSS <= 100 MB: %s completed, %s errors, peak %.1f MB\n", verdict(slowerr == 0 && slown == slowwant && peak <= 102400), slowwant, slown, slowerr, peak / 1024
        printf "  %s idle RSS <= 10 MB: %.1f MB\n", verdict(idle <= 10240), idle / 1024
        printf "  %s start to ready <= 50 ms: median %s ms\n", verdict(ready <= 50), ready
    }' "$RESULTS"
fi
if [[ -s ${OHA_RESULTS:-} ]]; then
    echo
    echo "c=32 chat with oha ($OHA_ROUNDS rounds of $DUR s): req/s, ratio to direct in the same round"
    awk -F'\t' '{ rps[$1, $2] = $3; err[$2] += $5; rounds[$1] = 1; targets[$2] = 1 }
    END {
        for (t in targets) {
            n = 0; line = ""
            for (r in rounds) {
                if (t != "direct" && rps[r, "direct"] > 0) { ratio[t, ++n] = rps[r, t] / rps[r, "direct"] }
                line = line sprintf(" %d", rps[r, t])
            }
            # median of the per-round ratios (insertion sort: a handful of rounds)
            for (i = 2; i <= n; i++) for (j = i; j > 1 && ratio[t, j - 1] > ratio[t, j]; j--) {
                tmp = ratio[t, j]; ratio[t, j] = ratio[t, j - 1]; ratio[t, j - 1] = tmp
            }
            med = (n == 0) ? "-" : sprintf("%.3f", (n % 2) ? ratio[t, (n + 1) / 2] : (ratio[t, n / 2] + ratio[t, n / 2 + 1]) / 2)
            printf "  %-8s req/s%s  ratio median %s  errors %d\n", t, line, med, err[t]
        }
    }' "$OHA_RESULTS"
fi
