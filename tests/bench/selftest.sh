#!/usr/bin/env bash
# Checks that wsload notices what it is meant to measure. Runs it against the Node ws +
# Redis peer three times: clean (must report zero lost/duplicates/reordered), and with
# the peer's fault flags dropping, duplicating and swapping deliveries (each must show up
# in the matching counter). Bounded: three runs of about 5 s each. Exit 0 when all agree.
# usage: tests/bench/selftest.sh   (env: lib.sh's BUILD, WSLOAD)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_need_wsload
fail=0

check() { # name, peer flags, node expression over d that must be true
  local name=$1 flags=$2 expr=$3 out=$BENCH_OUT/selftest-$1.json
  PEER_FLAGS=$flags bench_start_peer "selftest-$name"
  "$WSLOAD" --mode pubsub --url "$target_url" --conns 50 --topics 5 --pubs 1 --rate 200 \
    --duration 2 --grace 2 --quiet >"$out" || true
  if [ "$(bench_json "$out" "($expr) ? 'ok' : 'no'")" = ok ]; then
    echo "ok   $name: $(bench_json "$out" 'JSON.stringify(d.events)')"
  else
    echo "FAIL $name: expected $expr; got $(bench_json "$out" 'JSON.stringify(d.events)')"
    fail=1
  fi
  bench_stop_target
}

# 200/s for 2 s over 5 topics with 10 subscribers each: 400 publishes, 4,000 deliveries.
check clean "" 'd.events.expected === 4000 && d.events.received === 4000 && d.events.lost === 0 && d.events.duplicates === 0 && d.events.reordered === 0'
check drop "--fault-drop-every 100" 'd.events.expected === 4000 && d.events.lost === 40 && d.events.received === 3960 && d.events.duplicates === 0'
check dup "--fault-dup-every 100" 'd.events.duplicates === 40 && d.events.lost === 0 && d.events.reordered === 0'
# A held-back delivery still held at the end is lost for real (at most one per connection).
check swap "--fault-swap-every 100" 'd.events.reordered >= 35 && d.events.duplicates === 0 && d.events.lost <= 5'
echo "$([ $fail = 0 ] && echo 4 passed, 0 failed || echo some failed)"
exit $fail
