#!/usr/bin/env bash
# bench/keys.sh — what gateway keys cost on the hot path: the same load through three gateways
# in front of one mock upstream — no keys; a key with rpm, tpm and a daily budget on the
# embedded store; the same key on Redis — alternating rounds, with direct-to-the-mock rows as
# the baseline. The limits are far above the load, so every call is admitted, counted, charged.
#
#   bash bench/keys.sh > rows.jsonl        # labels: direct, open, embedded, redis
#
# Each row also carries `proxy_cpu_us`: the gateway's CPU time (all threads) per request
# answered, warm-up included (not for direct): less noisy than req/s on a shared machine.
# The last line is a summary: per-round ratios to "open" and their medians.
#
# Needs the release gateway and the bench tools (load, mock-upstream) under $CARGO_TARGET_DIR
# (default ../target), and redis-server. Knobs: ROUNDS (5), DUR (s per row, 3), C (32).
# Loopback only; everything started here is stopped on exit.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
T=${CARGO_TARGET_DIR:-$ROOT/target}/release
ROUNDS=${ROUNDS:-5}; DUR=${DUR:-3}; C=${C:-32}
ADMIN=sk-gw-bench-admin-0000000000000000
KEY=sk-gw-bench-client-000000000000000
tmp=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; wait; rm -rf "$tmp"' EXIT
"$T/mock-upstream" > "$tmp/m" & sleep 0.3
mock=$(sed -n 's/.*http:\/\///p' "$tmp/m" | head -1)
rport=$("$T/load" free-port)
redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" > /dev/null &
# Started from this shell (not a command substitution's subshell), so the exit trap stops them.
gateway() {  # name, extra VAR=value words
  local name=$1; shift
  mkdir -p "$tmp/$name"
  env PORT=0 LITELLM_BASE_URL="http://$mock/v1" LITELLM_API_KEY=sk-fake-bench LOG_DIR="$tmp/$name/logs" \
    DATA_DIR="$tmp/$name/data" LOG_LEVEL=warn WORKERS=256 "$@" "$T/llmcallgateway" > "$tmp/$name/out" 2> "$tmp/$name/err" &
  echo $! > "$tmp/$name/pid"
  for _ in $(seq 50); do grep -q listening "$tmp/$name/out" && break; sleep 0.1; done
}
addr() { sed -n 's/.*http:\/\///p' "$tmp/$1/out" | head -1; }
gateway open
gateway embedded ADMIN_API_KEY=$ADMIN
gateway redis ADMIN_API_KEY=$ADMIN REDIS_URL="redis://127.0.0.1:$rport"
open=$(addr open); embedded=$(addr embedded); redis=$(addr redis)
for gw in "$embedded" "$redis"; do
  curl -sf "http://$gw/key/generate" -H "authorization: Bearer $ADMIN" -d "{\"key\": \"$KEY\",
    \"rpm_limit\": 100000000, \"tpm_limit\": 100000000000, \"max_budget\": 1000000, \"budget_duration\": \"1d\"}" > /dev/null
done
# utime+stime of a process, all threads, in clock ticks.
ticks() { local s; s=$(cat "/proc/$1/stat"); s=${s##*) }; set -- $s; echo $(( ${12} + ${13} )); }
HZ=$(getconf CLK_TCK)
run() {  # address, label
  local pid="" t0=0 out
  [[ -f "$tmp/$2/pid" ]] && pid=$(cat "$tmp/$2/pid") && t0=$(ticks "$pid")
  out=$("$T/load" run --url "http://$1/v1/chat/completions" --mode nonstream -c "$C" -d "$DUR" --warmup 0.5 --key "$KEY" --label "$2")
  if [[ -n $pid ]]; then
    local n; n=$(sed -n 's/.*"all_requests":\([0-9]*\).*/\1/p' <<<"$out")
    out="${out%\}},\"proxy_cpu_us\":$(awk -v d=$(( $(ticks "$pid") - t0 )) -v hz="$HZ" -v n="$n" 'BEGIN { printf "%.1f", n ? d / hz * 1e6 / n : 0 }')}"
  fi
  echo "$out" | tee -a "$tmp/rows"
}
for _ in $(seq "$ROUNDS"); do
  run "$mock" direct; run "$open" open; run "$embedded" embedded; run "$redis" redis
done
python3 - "$tmp/rows" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
by = {}
for r in rows:
    by.setdefault(r["label"], []).append(r)
summary = {"errors": sum(r["errors"] for r in rows)}
for label in ("embedded", "redis"):
    pairs = list(zip(by[label], by["open"]))
    rps = [a["rps"] / b["rps"] for a, b in pairs]
    cpu = [a["proxy_cpu_us"] / b["proxy_cpu_us"] for a, b in pairs if b["proxy_cpu_us"]]
    summary[label] = {
        "rps_ratio_median": round(statistics.median(rps), 3),
        "rps_ratios": [round(x, 3) for x in rps],
        "cpu_per_request_ratio_median": round(statistics.median(cpu), 3) if cpu else None,
    }
print(json.dumps({"label": "summary", **summary}))
PY
