#!/usr/bin/env bash
# The project's test command. Makes the Python virtualenv that the OpenAI SDK tests use
# (.venv, from tests/sdk/requirements.txt; rebuilt when that file changes), then runs every
# Rust test: unit tests, the integration tests over real sockets, and the SDK tests.
set -euo pipefail
cd "$(dirname "$0")/.."

stamp=.venv/.requirements
if ! cmp -s tests/sdk/requirements.txt "$stamp" 2>/dev/null; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r tests/sdk/requirements.txt
  cp tests/sdk/requirements.txt "$stamp"
fi

cargo test "$@"
