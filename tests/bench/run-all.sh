#!/usr/bin/env bash
# `make bench`: every benchmark scenario that exists, each bounded (at most about 2
# minutes, enforced with timeout), loopback only, against the daemon and the Node ws +
# Redis peer side by side (and nats-server for the memory scenarios). Scenarios (docs/bench-tools.md, docs/benchmarks.md):
#   selftest  wsload against the peer with injected drops/duplicates/swaps (tool check)
#   idle   10,000 idle WebSocket connections: RSS bytes per connection (issue 2)
#   s3     19,000 idle subscribed connections: RSS bytes per connection
#   s1     5,000 subscribers on one topic at a few publish rates: loss, delivery latency
#   s2     15,000 subscribers over 1,500 topics, 1,500 publishes/s: delivery latency
#   pubs   publishing alone (8 publishers on the coord-bulk subprotocol, 100 topics): durable acks/s and ack latency
# usage: tests/bench/run-all.sh [scenario...]     (default: all of them)
# env:   lib.sh's BUILD, COORDINATOR_BIN, WSLOAD, BENCH_OUT; TARGETS (default: each
#        script's own: "coordinator peer nats" for idle/s3, "coordinator peer" otherwise).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
export BENCH_OUT=${BENCH_OUT:-$root/tests/artifacts/bench/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$BENCH_OUT"
report=$BENCH_OUT/report.txt
scenarios=${*:-selftest idle s3 s1 s2 pubs}
status=0

run() { # name, then env assignments and the script
  local name=$1
  shift
  echo "== $name" | tee -a "$report"
  if ! env "$@" 2>>"$BENCH_OUT/stderr.txt" | tee -a "$report"; then
    echo "(scenario $name failed or timed out; see $BENCH_OUT/stderr.txt)" | tee -a "$report"
    status=1
  fi
}

for s in $scenarios; do
  case "$s" in
    selftest) run selftest timeout 90 "$here/selftest.sh" ;;
    idle) run idle N=10000 HOLD=15 timeout 150 "$here/run-idle.sh" ;;
    s3) run s3 N=19000 HOLD=15 SUBSCRIBE=1 TOPICS=1000 timeout 170 "$here/run-idle.sh" ;;
    s1) run s1 NAME=s1 SUBS=5000 TOPICS=1 PUBS=1 DURATION=15 WARMUP=2 \
          RATES_coordinator="200 500" RATES_peer="10 200" timeout 170 "$here/run-pubsub.sh" ;;
    s2) run s2 NAME=s2 SUBS=15000 TOPICS=1500 PUBS=10 RATES=1500 DURATION=20 WARMUP=2 \
          MAX_P99_MS=50 timeout 170 "$here/run-pubsub.sh" ;;
    pubs) run pubs NAME=pubs SUBS=0 TOPICS=100 PUBS=8 PUB_WORKERS=2 DURATION=10 WARMUP=1 PUB_SUBPROTOCOL=coord-bulk \
            RATES_coordinator=200000 RATES_peer=5000 timeout 120 "$here/run-pubsub.sh" ;;
    *) echo "run-all: unknown scenario $s (selftest idle s3 s1 s2 pubs)" >&2; status=2 ;;
  esac
done
echo "results: $BENCH_OUT (report.txt, *-summary.json, one wsload JSON per run)"
exit $status
