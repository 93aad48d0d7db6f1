#!/usr/bin/env bash
# The README's test command: installs what is missing, builds and runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
  cargo test --workspace --doc
else
  cargo test --workspace --lib --bins --tests --no-fail-fast
fi
# Each criterion benchmark runs once in test mode, so a broken benchmark fails the tests.
cargo test --workspace --benches
