#!/usr/bin/env bash
# The README's run command: builds Tally (the optimized dev profile) and starts the dev stack on
# loopback: a single-node cluster (embedded RocksDB under tally-data/dev), the PSP simulator and
# a gateway, all on TLS with a development CA made by `tally certs` (tally-data/certs), then
# prints how to take a first payment. Ctrl-C stops all three.
# Usage: scripts/dev.sh [--no-build] [--insecure-dev]
#   --insecure-dev  plaintext everywhere, no certificates (local experiments only)
set -euo pipefail
cd "$(dirname "$0")/.."

build=1 insecure=0
for arg in "$@"; do
  case "$arg" in
    --no-build) build=0 ;;
    --insecure-dev) insecure=1 ;;
    *) echo "usage: scripts/dev.sh [--no-build] [--insecure-dev]" >&2; exit 2 ;;
  esac
done
if [ "$build" = 1 ]; then
  scripts/install-deps.sh
  # The same build selection as the tests (see README): it reuses their compiled RocksDB.
  cargo build --workspace --all-targets
fi
bin="${CARGO_TARGET_DIR:-target}/debug"
case "$bin" in /*) ;; *) bin="$PWD/$bin" ;; esac
admin_token="${TALLY_ADMIN_TOKEN:-dev-admin-token}"
webhook_secret="${TALLY_PSP_WEBHOOK_SECRET:-dev-webhook-secret}"

mkdir -p tally-data
certs="$PWD/tally-data/certs"
if [ "$insecure" = 1 ]; then
  scheme=http
  node_tls=(--insecure-dev) psp_tls=(--insecure-dev) gateway_tls=(--insecure-dev)
  export TALLY_INSECURE_DEV=true
  unset TALLY_CA TALLY_CERT TALLY_KEY
  client_env="TALLY_INSECURE_DEV=true"
  curl_tls=""
else
  scheme=https
  [ -f "$certs/operator-dev.pem" ] || "$bin/tally" certs --out "$certs" > /dev/null
  node_tls=(--ca "$certs/ca.pem" --cert "$certs/node-1.pem" --key "$certs/node-1.key")
  psp_tls=(--ca "$certs/ca.pem" --cert "$certs/server-psp.pem" --key "$certs/server-psp.key")
  gateway_tls=(--ca "$certs/ca.pem" --cert "$certs/gateway-dev.pem" --key "$certs/gateway-dev.key")
  # The operator's certificate: admin and ledger API on the node, and the gateway's TLS.
  export TALLY_CA="$certs/ca.pem" TALLY_CERT="$certs/operator-dev.pem" TALLY_KEY="$certs/operator-dev.key"
  unset TALLY_INSECURE_DEV
  client_env="TALLY_CA=$TALLY_CA TALLY_CERT=$TALLY_CERT TALLY_KEY=$TALLY_KEY"
  curl_tls="--cacert $certs/ca.pem "
fi
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

"$bin/tally-node" --dev "${node_tls[@]}" > tally-data/node.log 2>&1 &
pids+=($!)
"$bin/tally-psp-sim" --listen 127.0.0.1:7300 "${psp_tls[@]}" \
  --webhook-url "$scheme://127.0.0.1:7280/webhooks/sim" \
  --webhook-secret "$webhook_secret" > tally-data/psp-sim.log 2>&1 &
pids+=($!)

# The gateway needs a leader: wait (bounded) until the node answers.
for _ in $(seq 1 100); do
  "$bin/tally" cluster status > /dev/null 2>&1 && break
  sleep 0.1
done
"$bin/tally-gateway" --nodes 127.0.0.1:7100 --grpc-listen 127.0.0.1:7200 --http-listen 127.0.0.1:7280 \
  "${gateway_tls[@]}" --psp-url "$scheme://127.0.0.1:7300" --psp-webhook-secret "$webhook_secret" \
  --admin-token "$admin_token" --webhook-allow-http --webhook-allow-net 127.0.0.1 --webhook-allow-net ::1 \
  > tally-data/gateway.log 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  (exec 3<>/dev/tcp/127.0.0.1/7200) 2>/dev/null && break
  sleep 0.1
done

cat <<EXAMPLE

Tally dev stack (logs in tally-data/*.log), on ${scheme^^}:
  node     ledger API 127.0.0.1:7100 (Raft 127.0.0.1:7101), data in tally-data/dev
  gateway  gRPC 127.0.0.1:7200, HTTP 127.0.0.1:7280 (/v1/payments, /healthz, /readyz, /metrics)
  PSP sim  HTTP 127.0.0.1:7300 (card tokens: tok_visa ok, tok_decline, tok_3ds pending)
$( [ "$insecure" = 0 ] && echo "  certificates in $certs (CA, node-1, gateway-dev, operator-dev, client-dev, server-psp)")

Take a first payment, in another terminal:

  export PATH="$bin:\$PATH" TALLY_ADMIN_TOKEN=$admin_token
  export $client_env
  tally merchant create --id shop --name "The Shop"
  tally merchant create --id seller1 --name "Seller One" --fee-bps 250
  tally buyer create --id alice --wallet USD
  eval "\$(tally merchant api-key shop --export)"
  tally payment create --checkout c1 --buyer alice --card tok_visa --order o1:seller1:25.00:USD
  tally payment order o1          # succeeded; 24.38 held for seller1 until fulfilled
  tally payment fulfill o1        # held -> seller1's available balance

The same over HTTP:

  curl -s ${curl_tls}-H "authorization: Bearer \$TALLY_API_KEY" $scheme://127.0.0.1:7280/v1/payments/o1

EXAMPLE
wait
