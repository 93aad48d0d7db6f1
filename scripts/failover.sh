#!/usr/bin/env bash
# Measures failover on a real 3-node loopback cluster: kill -9 the leader, then time the first
# acknowledged write through the surviving nodes. Usage: scripts/failover.sh [ROUNDS] (default 3).
# Needs the binaries built by scripts/dev.sh or scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
bin="${TALLY_BIN_DIR:-${CARGO_TARGET_DIR:-target}/debug}"
work="$(mktemp -d)"
endpoints="127.0.0.1:7200,127.0.0.1:7202,127.0.0.1:7204"
declare -A pids
cleanup() { kill -9 "${pids[@]}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
"$bin/tally" certs --out "$work/certs" --node 1 --node 2 --node 3 --operator ops > /dev/null
export TALLY_CA="$work/certs/ca.pem" TALLY_CERT="$work/certs/operator-ops.pem" TALLY_KEY="$work/certs/operator-ops.key"

start() {
  local n=$1 api=$((7198 + 2 * $1))
  "$bin/tally-node" --id "$n" --data-dir "$work/node-$n" --api-addr "127.0.0.1:$api" \
    --raft-addr "127.0.0.1:$((api + 1))" --cert "$work/certs/node-$n.pem" --key "$work/certs/node-$n.key" \
    >> "$work/node-$n.log" 2>&1 &
  pids[$n]=$!
}

leader() {
  "$bin/tally" --endpoints "$endpoints" --json cluster status |
    python3 -c 'import json,sys; rows=json.load(sys.stdin); print(next(r["leader"] for r in rows if r["leader"] not in ("-","")))'
}

for n in 1 2 3; do start "$n"; done
sleep 1
"$bin/tally" --endpoints 127.0.0.1:7200 cluster init --member 1=127.0.0.1:7201,127.0.0.1:7200 \
  --member 2=127.0.0.1:7203,127.0.0.1:7202 --member 3=127.0.0.1:7205,127.0.0.1:7204 > /dev/null
sleep 1
"$bin/tally" --endpoints "$endpoints" account create --id 1 --currency USD > /dev/null
"$bin/tally" --endpoints "$endpoints" account create --id 2 --currency USD > /dev/null

for round in $(seq 1 "$rounds"); do
  old=$(leader)
  "$bin/tally" --endpoints "$endpoints" transfer --id "$((1000 * round))" --debit 1 --credit 2 --amount 1.00 --currency USD > /dev/null
  killed_ns=$(date +%s%N)
  kill -9 "${pids[$old]}"
  "$bin/tally" --endpoints "$endpoints" transfer --id "$((1000 * round + 1))" --debit 1 --credit 2 --amount 1.00 --currency USD > /dev/null
  acked_ns=$(date +%s%N)
  echo "round $round: killed leader $old; first acknowledged write after $(( (acked_ns - killed_ns) / 1000000 )) ms"
  start "$old"
  sleep 2
done
"$bin/tally" --endpoints "$endpoints" balance 2
