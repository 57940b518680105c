#!/usr/bin/env bash
# What recording costs: the same non-stream load (c=32 by default) through the gateway with
# LOG_BODIES=truncated (the default), LOG_BODIES=none, METRICS=false, and both off, each run
# ROUNDS times in turn (A B C D A B C D …) so that drift on a shared machine falls on every
# variant alike. Prints req/s, CPU µs per request and the recorder queue's maximum depth per
# variant (median over rounds), and the throughput of each relative to the default.
#
#   bash bench/recorder.sh            # DUR=5 ROUNDS=3 C=32 MODE=nonstream
#
# Builds like run.sh (SKIP_BUILD=1 to skip); loopback only; stops everything it started.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
BENCH_BIN=${CARGO_TARGET_DIR:-$ROOT/bench/target}/release
DUR=${DUR:-5}
ROUNDS=${ROUNDS:-3}
C=${C:-32}
MODE=${MODE:-nonstream}
TMP=$(mktemp -d -t llmcg-recorder.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ulimit -n 65536 2>/dev/null || true

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    (cd "$ROOT" && cargo build --release --quiet)
    (cd "$ROOT/bench" && CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/bench/target} cargo build --release --quiet)
fi

wait_listening() {
    for _ in $(seq 1 500); do
        if grep -q '^listening on http://' "$1" 2>/dev/null; then
            sed -n 's|^listening on http://\([^ /]*\).*|\1|p' "$1" | head -1
            return 0
        fi
        sleep 0.01
    done
    return 1
}
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

"$BENCH_BIN/mock-upstream" --port 0 >"$TMP/mock.out" 2>&1 &
PIDS+=($!)
MOCK=$(wait_listening "$TMP/mock.out")

VARIANTS=("default" "LOG_BODIES=none" "METRICS=false" "LOG_BODIES=none METRICS=false")
declare -A RPS CPU DEPTH
HZ=$(getconf CLK_TCK)
for round in $(seq 1 "$ROUNDS"); do
    for v in "${VARIANTS[@]}"; do
        env_words=()
        [[ $v != default ]] && read -ra env_words <<<"$v"
        rm -rf "$TMP/logs" "$TMP/gw.out"
        env PORT=0 LOG_DIR="$TMP/logs" LITELLM_BASE_URL="http://$MOCK/v1" LITELLM_API_KEY=sk-fake-bench \
            "${env_words[@]}" "$BIN/llmcallgateway" >"$TMP/gw.out" 2>/dev/null &
        gw=$!
        GW=$(wait_listening "$TMP/gw.out")
        "$BENCH_BIN/load" run --url "http://$GW/v1/chat/completions" --mode "$MODE" -c "$C" -d 0.5 >/dev/null
        t0=$(ticks "$gw")
        line=$("$BENCH_BIN/load" run --url "http://$GW/v1/chat/completions" --mode "$MODE" -c "$C" -d "$DUR" | tail -1)
        t1=$(ticks "$gw")
        depth=$(curl -s "http://$GW/health" | sed -n 's/.*"max_depth":\([0-9]*\).*/\1/p')
        kill "$gw"
        wait "$gw" 2>/dev/null || true
        rps=$(sed -n 's/.*"rps":\([0-9.]*\).*/\1/p' <<<"$line")
        reqs=$(sed -n 's/.*"all_requests":\([0-9]*\).*/\1/p' <<<"$line")
        errors=$(sed -n 's/.*"errors":\([0-9]*\).*/\1/p' <<<"$line")
        cpu=$(awk -v t=$((t1 - t0)) -v hz="$HZ" -v n="$reqs" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
        RPS[$v]+="$rps "
        CPU[$v]+="$cpu "
        DEPTH[$v]+="$depth "
        echo "round $round  $v: $rps req/s, $cpu µs CPU/req, max queue depth $depth, $errors errors" >&2
    done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
base=$(median <<<"${RPS[default]}")
printf '\n%-32s %10s %8s %14s %10s\n' "variant (c=$C, $MODE)" "req/s" "vs def." "CPU µs/req" "max depth"
for v in "${VARIANTS[@]}"; do
    r=$(median <<<"${RPS[$v]}")
    printf '%-32s %10s %8s %14s %10s\n' "$v" "$r" "$(awk -v a="$r" -v b="$base" 'BEGIN {printf "%.3f", a / b}')" \
        "$(median <<<"${CPU[$v]}")" "$(tr ' ' '\n' <<<"${DEPTH[$v]}" | sort -g | tail -1)"
done
