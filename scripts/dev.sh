#!/usr/bin/env bash
# The README's run command: builds Tally (the optimized dev profile) and starts a single-node dev cluster on loopback
# (embedded RocksDB under tally-data/dev), printing how to use it. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
# The same build selection as the tests (see README): it reuses their compiled RocksDB.
cargo build --workspace --all-targets
bin="${CARGO_TARGET_DIR:-target}/debug"

cat <<EXAMPLE

Tally dev node: ledger API on 127.0.0.1:7100, Raft on 127.0.0.1:7101, data in tally-data/dev.
In another terminal:

  $bin/tally cluster status
  $bin/tally account create --id 1 --currency USD                      # a bank account
  $bin/tally account create --id 2 --currency USD --no-overdraft       # a wallet
  $bin/tally transfer --id 100 --debit 1 --credit 2 --amount 25.00 --currency USD
  $bin/tally balance 2
  $bin/tally history 2

EXAMPLE
exec "$bin/tally-node" --dev
