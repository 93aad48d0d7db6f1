#!/usr/bin/env bash
# The README's run command: builds Tally (the optimized dev profile) and starts the dev stack on
# loopback: a single-node cluster (embedded RocksDB under tally-data/dev), the PSP simulator and
# a gateway, then prints how to take a first payment. Ctrl-C stops all three.
# Usage: scripts/dev.sh [--no-build]
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" != "--no-build" ]; then
  scripts/install-deps.sh
  # The same build selection as the tests (see README): it reuses their compiled RocksDB.
  cargo build --workspace --all-targets
fi
bin="${CARGO_TARGET_DIR:-target}/debug"
case "$bin" in /*) ;; *) bin="$PWD/$bin" ;; esac
admin_token="${TALLY_ADMIN_TOKEN:-dev-admin-token}"
webhook_secret="${TALLY_PSP_WEBHOOK_SECRET:-dev-webhook-secret}"

mkdir -p tally-data
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

"$bin/tally-node" --dev > tally-data/node.log 2>&1 &
pids+=($!)
"$bin/tally-psp-sim" --listen 127.0.0.1:7300 \
  --webhook-url http://127.0.0.1:7280/webhooks/sim \
  --webhook-secret "$webhook_secret" > tally-data/psp-sim.log 2>&1 &
pids+=($!)

# The gateway needs a leader: wait (bounded) until the node answers.
for _ in $(seq 1 100); do
  "$bin/tally" cluster status > /dev/null 2>&1 && break
  sleep 0.1
done
"$bin/tally-gateway" --nodes 127.0.0.1:7100 --grpc-listen 127.0.0.1:7200 --http-listen 127.0.0.1:7280 \
  --psp-url http://127.0.0.1:7300 --psp-webhook-secret "$webhook_secret" \
  --admin-token "$admin_token" --webhook-allow-http > tally-data/gateway.log 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  (exec 3<>/dev/tcp/127.0.0.1/7200) 2>/dev/null && break
  sleep 0.1
done

cat <<EXAMPLE

Tally dev stack (logs in tally-data/*.log):
  node     ledger API 127.0.0.1:7100 (Raft 127.0.0.1:7101), data in tally-data/dev
  gateway  gRPC 127.0.0.1:7200, HTTP 127.0.0.1:7280 (/v1/payments, /healthz, /readyz, /metrics)
  PSP sim  HTTP 127.0.0.1:7300 (card tokens: tok_visa ok, tok_decline, tok_3ds pending)

Take a first payment, in another terminal:

  export PATH="$bin:\$PATH" TALLY_ADMIN_TOKEN=$admin_token
  tally merchant create --id shop --name "The Shop"
  tally merchant create --id seller1 --name "Seller One" --fee-bps 250
  tally buyer create --id alice --wallet USD
  eval "\$(tally merchant api-key shop --export)"
  tally payment create --checkout c1 --buyer alice --card tok_visa --order o1:seller1:25.00:USD
  tally payment order o1          # succeeded; 24.38 held for seller1 until fulfilled
  tally payment fulfill o1        # held -> seller1's available balance

The same over HTTP:

  curl -s -H "authorization: Bearer \$TALLY_API_KEY" http://127.0.0.1:7280/v1/payments/o1

EXAMPLE
wait
