#!/usr/bin/env bash
# Calls a running LLMCallGateway with curl: chat, a stream, embeddings, the model list, health
# and metrics, using the built-in mock models (no API key needed).
#
#   bash examples/curl.sh                                  # http://127.0.0.1:8728/v1
#   bash examples/curl.sh http://gw.internal:8728/v1       # or GATEWAY_BASE_URL=…
#
# Exits non-zero at the first call that fails (curl --fail: any 4xx/5xx counts).
set -euo pipefail

base="${1:-${GATEWAY_BASE_URL:-http://127.0.0.1:8728/v1}}"
base="${base%/}"
root="${base%/v1}"
call() { curl --silent --show-error --fail-with-body --max-time 30 "$@"; echo; }
json=(-H 'content-type: application/json')

echo "== chat"
call "$base/chat/completions" "${json[@]}" -H 'x-request-id: curl-example-1' \
  -d '{"model":"mock/echo","messages":[{"role":"user","content":"hello from curl"}]}'

echo "== stream (one SSE event per line, ends with data: [DONE])"
call --no-buffer "$base/chat/completions" "${json[@]}" \
  -d '{"model":"mock/lorem","stream":true,"messages":[{"role":"user","content":"5"}]}'

echo "== embeddings (a batch of two, 8 dimensions)"
call "$base/embeddings" "${json[@]}" \
  -d '{"model":"mock/embed","input":["first text","second text"],"dimensions":8}'

echo "== models"
call "$base/models"

echo "== health"
call "$root/health"

echo "== metrics (Prometheus text format, first lines)"
call "$root/metrics/prometheus" | sed -n 1,5p   # sed reads it all: no SIGPIPE

echo "== all calls succeeded"
