#!/usr/bin/env bash
# Starts a local 3-node cluster on loopback (ports 7100-7105, data in tally-data/node-N) on
# mutual TLS (certificates from `tally certs` in tally-data/cluster-certs), initializes it, and
# stops all three on Ctrl-C. Prints the TALLY_CA/TALLY_CERT/TALLY_KEY to use it with `tally`.
# Usage: scripts/cluster.sh [--no-build | --release]
#   --no-build  use the binaries already built (the tests' optimized dev build)
#   --release   build and run release binaries (what to benchmark; a first release build
#               compiles RocksDB's C++ once more, about 15 minutes on two cores)
set -euo pipefail
cd "$(dirname "$0")/.."

profile=debug
case "${1:-}" in
  --no-build) ;;
  --release)
    scripts/install-deps.sh
    cargo build --release -p tally-raft-store --bin tally-node -p tally-cli --bin tally
    profile=release
    ;;
  "")
    scripts/install-deps.sh
    # The same build selection as the tests (see README): it reuses their compiled RocksDB.
    cargo build --workspace --all-targets
    ;;
  *) echo "usage: scripts/cluster.sh [--no-build | --release]" >&2; exit 2 ;;
esac
bin="${CARGO_TARGET_DIR:-target}/$profile"

mkdir -p tally-data
certs="$PWD/tally-data/cluster-certs"
[ -f "$certs/operator-ops.pem" ] ||
  "$bin/tally" certs --out "$certs" --node 1 --node 2 --node 3 --operator ops --client bench \
    --gateway-name bench --server psp > /dev/null
export TALLY_CA="$certs/ca.pem"
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

for n in 1 2 3; do
  api=$((7098 + 2 * n)); raft=$((api + 1))
  "$bin/tally-node" --id "$n" --data-dir "tally-data/node-$n" \
    --api-addr "127.0.0.1:$api" --raft-addr "127.0.0.1:$raft" \
    --cert "$certs/node-$n.pem" --key "$certs/node-$n.key" > "tally-data/node-$n.log" 2>&1 &
  pids+=($!)
done
sleep 1
export TALLY_CERT="$certs/operator-ops.pem" TALLY_KEY="$certs/operator-ops.key"
"$bin/tally" --endpoints 127.0.0.1:7100 cluster init \
  --member 1=127.0.0.1:7101,127.0.0.1:7100 \
  --member 2=127.0.0.1:7103,127.0.0.1:7102 \
  --member 3=127.0.0.1:7105,127.0.0.1:7104 || echo "(already initialized)"
"$bin/tally" --endpoints 127.0.0.1:7100,127.0.0.1:7102,127.0.0.1:7104 cluster status
echo "cluster running (logs in tally-data/node-N.log); Ctrl-C stops it. To use it:"
echo "  export TALLY_CA=$TALLY_CA TALLY_CERT=$TALLY_CERT TALLY_KEY=$TALLY_KEY"
echo "  (or $certs/client-bench.pem/.key for the ledger API only)"
wait
