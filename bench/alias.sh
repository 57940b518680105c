#!/usr/bin/env bash
# bench/alias.sh — what the router costs: one gateway whose config file has an alias `fast` of
# one deployment (the mock upstream), the same load by the alias and by the plain model name,
# alternating rounds, with direct-to-the-mock rows as the baseline.
#
#   bash bench/alias.sh > rows.jsonl        # labels: direct, plain, alias
#
# Needs the release gateway and the bench tools (load, mock-upstream) under $CARGO_TARGET_DIR
# (default ../target). Knobs: ROUNDS (5), DUR (s per row, 3). Loopback only; everything started
# here is stopped on exit.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
T=${CARGO_TARGET_DIR:-$ROOT/target}/release
ROUNDS=${ROUNDS:-5}; DUR=${DUR:-3}
tmp=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
"$T/mock-upstream" > "$tmp/m" & sleep 0.3
mock=$(sed -n 's/.*http:\/\///p' "$tmp/m" | head -1)
printf 'model_list:\n  - model_name: fast\n    litellm_params:\n      model: openai/gpt-4o-mini\n      api_base: http://%s/v1\n      api_key: sk-fake-bench\n' "$mock" > "$tmp/config.yaml"
PORT=0 CONFIG_FILE="$tmp/config.yaml" LITELLM_BASE_URL="http://$mock/v1" LITELLM_API_KEY=sk-fake-bench \
  LOG_DIR="$tmp/logs" LOG_LEVEL=warn WORKERS=256 "$T/llmcallgateway" > "$tmp/g" 2> "$tmp/g.err" &
for _ in $(seq 50); do grep -q listening "$tmp/g" && break; sleep 0.1; done
gw=$(sed -n 's/.*http:\/\///p' "$tmp/g" | head -1)
run() { "$T/load" run --url "http://$1/v1/chat/completions" --mode "$2" -c "$3" -d "$DUR" --warmup 0.5 --model "$4" --label "$5"; }
for mode in nonstream stream; do for c in 1 32; do for _ in $(seq "$ROUNDS"); do
  run "$mock" $mode $c gpt-4o-mini direct; run "$gw" $mode $c gpt-4o-mini plain; run "$gw" $mode $c fast alias
done; done; done
