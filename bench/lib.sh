# bench/lib.sh — what the bench scripts share (sourced, not run): where the release binaries
# are, how they are built, and small helpers.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$CARGO_TARGET_DIR/release

# Builds the gateway and the bench tools (release), unless SKIP_BUILD=1.
build_release() {
    [[ ${SKIP_BUILD:-0} == 1 ]] && return 0
    (cd "$ROOT" && cargo build --release --quiet)
    (cd "$ROOT/bench" && cargo build --release --quiet)
}

# Waits for "listening on http://ADDR" in a file while process PID lives; prints ADDR.
wait_listening() {
    local file=$1 pid=$2 i
    for ((i = 0; i < 1000; i++)); do
        if grep -q '^listening on http://' "$file" 2>/dev/null; then
            sed -n 's|^listening on http://\([^ /]*\).*|\1|p' "$file" | head -1
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.01
    done
    return 1
}

# A field of /proc/PID/status (VmRSS, Threads, …), 0 when the process is gone.
status_field() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# A number field from a flat JSON line.
jnum() { sed -n "s/.*\"$1\":\([-0-9.]*\).*/\1/p" <<<"$2"; }

# A scratch directory ($TMP) and a list of the processes started ($PIDS): the processes are
# stopped and the directory removed when the script exits, however it exits.
bench_workspace() {
    TMP=$(mktemp -d "/tmp/llmcg-$1.XXXXXX")
    PIDS=()
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}
bench_cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}

# Starts mock-upstream on a free loopback port: sets MOCK_PID and MOCK_ADDR.
start_mock() {
    "$BIN/mock-upstream" --port 0 >"$TMP/mock.out" 2>"$TMP/mock.err" &
    MOCK_PID=$!
    PIDS+=("$MOCK_PID")
    MOCK_ADDR=$(wait_listening "$TMP/mock.out" "$MOCK_PID") || { echo "mock did not start" >&2; exit 1; }
}

# CPU ticks (user + system) the processes PID... have used so far, summed.
cpu_ticks() {
    local total=0 p s
    for p in "$@"; do
        if [[ -r /proc/$p/stat ]]; then
            s=$(cat "/proc/$p/stat")
            s=${s##*) }
            # fields after "comm)": state=1 ... utime=12 stime=13
            total=$((total + $(awk '{print $12 + $13}' <<<"$s")))
        fi
    done
    echo "$total"
}
