#!/usr/bin/env bash
# The project's test command. Makes the Python virtualenv that the OpenAI SDK tests use
# (.venv, from tests/sdk/requirements.txt; rebuilt when that file changes) and installs the
# Node packages of the Vercel AI SDK test (tests/node, pinned by its lock file; again when the
# lock file changes), then runs every Rust test: unit tests, the integration tests over real
# sockets, and the SDK tests.
set -euo pipefail
cd "$(dirname "$0")/.."

stamp=.venv/.requirements
if ! cmp -s tests/sdk/requirements.txt "$stamp" 2>/dev/null; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r tests/sdk/requirements.txt
  cp tests/sdk/requirements.txt "$stamp"
fi

node_stamp=tests/node/node_modules/.lock-installed
if ! cmp -s tests/node/package-lock.json "$node_stamp" 2>/dev/null; then
  (cd tests/node && npm ci --no-audit --no-fund --loglevel=error)
  cp tests/node/package-lock.json "$node_stamp"
fi

cargo test "$@"
