#!/usr/bin/env bash
# bench/compare.sh — two gateway binaries (e.g. before and after a change) in front of the same
# mock upstream, under the same load, in alternating rounds, with direct-to-the-mock rows as
# the baseline: the way to tell what a change costs on a shared, noisy machine.
#
#   bash bench/compare.sh NEW_BINARY OLD_BINARY > rows.jsonl
#
# Needs the bench tools (`cd bench && cargo build --release`: load, mock-upstream) under
# $CARGO_TARGET_DIR (default ../target). Knobs: ROUNDS (3), DUR (s per row, 3). Rows: chat
# non-stream and 10-event streams at c=1 and c=32 (direct, old, new), then mock/echo at c=32.
# Loopback only; every process started here is stopped on exit.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
T=${CARGO_TARGET_DIR:-$ROOT/target}/release
NEW=$1; OLD=$2; ROUNDS=${ROUNDS:-3}; DUR=${DUR:-3}
tmp=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
"$T/mock-upstream" > "$tmp/mock.out" & sleep 0.3
mock=$(sed -n 's/.*http:\/\///p' "$tmp/mock.out" | head -1)
start() { # binary, name
  PORT=0 LITELLM_BASE_URL="http://$mock/v1" LITELLM_API_KEY=sk-fake-bench LOG_DIR="$tmp/logs-$2" \
    LOG_LEVEL=warn WORKERS=256 "$1" > "$tmp/$2.out" 2>/dev/null &
  for _ in $(seq 50); do grep -q listening "$tmp/$2.out" && break; sleep 0.1; done
  sed -n 's/.*http:\/\///p' "$tmp/$2.out" | head -1
}
new=$(start "$NEW" new); old=$(start "$OLD" old)
run() { "$T/load" run --url "http://$1/v1/chat/completions" --mode "$2" -c "$3" -d "$DUR" --warmup 0.5 --model "$4" --label "$5"; }
for mode in nonstream stream; do for c in 1 32; do
  for _ in $(seq "$ROUNDS"); do
    run "$mock" $mode $c gpt-4o-mini direct; run "$old" $mode $c gpt-4o-mini old; run "$new" $mode $c gpt-4o-mini new
  done
done; done
for _ in $(seq "$ROUNDS"); do run "$old" nonstream 32 mock/echo old-mock; run "$new" nonstream 32 mock/echo new-mock; done
