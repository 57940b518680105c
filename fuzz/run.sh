#!/usr/bin/env bash
# Runs every fuzz target (cargo fuzz / libFuzzer) for FUZZ_SECS seconds each (default 10) from
# its committed seeds in fuzz/seeds/<target>. What a run discovers goes to a temporary
# directory, so the tree is left as it was. A crash prints the failing input (base64) and fails
# the run: turn it into a named regression test (tests/it/props/).
#
# Stable toolchain: `--sanitizer none`. AddressSanitizer needs `-Zsanitizer`, which only a
# nightly compiler (or RUSTC_BOOTSTRAP=1) accepts; the gateway forbids `unsafe`, so what the
# fuzzers look for here is panics, overflows (`-a`: debug assertions and overflow checks on)
# and hangs, which need no sanitizer.
set -euo pipefail
cd "$(dirname "$0")"
secs=${FUZZ_SECS:-10}
# A fixed seed makes the run a fixed sequence of inputs: a slower machine runs a shorter prefix
# of the same sequence, so CI fails only when the code changed, not when luck did. Explore with
# another seed (FUZZ_SEED=$RANDOM) and turn what it finds into seeds and named tests.
seed=${FUZZ_SEED:-19}

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2
flags=(--sanitizer none --debug-assertions)
cargo fuzz build "${flags[@]}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0
for target in $(cargo fuzz list); do
  mkdir -p "$work/corpus/$target" "$work/artifacts/$target"
  started=$SECONDS
  if cargo fuzz run "${flags[@]}" "$target" "$work/corpus/$target" "seeds/$target" -- \
      -seed="$seed" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="$work/artifacts/$target/" >"$work/$target.log" 2>&1; then
    runs=$(grep -o 'Done [0-9]* runs' "$work/$target.log" | tail -1 || true)
    echo "fuzz $target: ok (${runs:-no summary}, $((SECONDS - started)) s)"
  else
    failed=1
    echo "fuzz $target: FAILED"
    grep -A6 -m1 "panicked" "$work/$target.log" | cut -c1-2000 || true
    tail -n 12 "$work/$target.log"
    for crash in "$work/artifacts/$target"/*; do
      [ -f "$crash" ] && echo "input ($(basename "$crash")), base64: $(base64 -w0 "$crash")"
    done
  fi
done
exit "$failed"
