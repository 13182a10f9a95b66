#!/usr/bin/env bash
# Memory per idle WebSocket connection (issue 2 "Done when"; S3 with SUBSCRIBE=1).
#
# For each target (the coordinator daemon, the Node ws + Redis peer, nats-server with its
# WebSocket listener spoken to in NATS's own protocol): start it on a
# free loopback port with a fresh data dir, read its RSS once ready (baseline), open N
# idle WebSocket connections with wsload (several worker processes, source addresses
# 127.0.0.2..11, 2,000 new connections/s), read its RSS again while they are held
# (median of 5 samples, 0.5 s apart, after 2 s of settling), and report
#   bytes per connection = (RSS_held - RSS_baseline) * 1024 / connections opened.
# wsload stops by itself after HOLD seconds; everything started here is stopped by PID.
#
# usage: tests/bench/run-idle.sh [N]
# env:   N (10000), HOLD (15 s), SUBSCRIBE (0; 1 = each connection subscribes to one of
#        TOPICS topics first), TOPICS (1000), TARGETS ("coordinator peer nats"),
#        plus lib.sh's BUILD, COORDINATOR_BIN, WSLOAD, BENCH_OUT.
# Output: a table on stdout; idle-<target>.json (wsload's summary), idle-<target>-rss.txt
# (RSS over the whole run) and idle-summary.json in BENCH_OUT.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

N=${1:-${N:-10000}}
HOLD=${HOLD:-15}
SUBSCRIBE=${SUBSCRIBE:-0}
TOPICS=${TOPICS:-1000}
TARGETS=${TARGETS:-coordinator peer nats}
bench_need_wsload

sub_flags=()
kind=idle
if [ "$SUBSCRIBE" = 1 ]; then
  sub_flags=(--subscribe --topics "$TOPICS")
  kind=idle-sub
fi
summary=$BENCH_OUT/$kind-summary.json
echo "[" >"$summary"
first=1
printf '%-12s %8s %8s %12s %12s %10s\n' target opened failed rss_base_kB rss_held_kB B/conn

for t in $TARGETS; do
  case "$t" in
    coordinator) bench_start_coordinator "$kind-coordinator" || { bench_log "skip coordinator"; continue; } ;;
    peer) bench_start_peer "$kind-peer" || { bench_log "skip peer"; bench_stop_target; continue; } ;;
    nats) bench_start_nats "$kind-nats" || { bench_log "skip nats"; bench_stop_target; continue; } ;;
    *) bench_log "unknown target $t"; continue ;;
  esac
  if ! bench_ws_works; then
    bench_log "$t does not accept WebSocket upgrades on /v1/ws yet: skipped"
    bench_stop_target
    continue
  fi
  base=$(bench_rss_median_kb "$target_pid" 3)
  setup=$((N / 2000 + 15))
  "$bench_root/tests/bench/rss.sh" "$target_pid" 0.5 $((setup + HOLD + 20)) \
    >"$BENCH_OUT/$kind-$t-rss.txt" &
  sampler=$!
  bench_pids+=("$sampler")
  ready=$bench_tmp/ready-$t
  rm -f "$ready"
  "$WSLOAD" --mode idle --url "$target_url" --conns "$N" --duration "$HOLD" \
    --ready-file "$ready" --quiet "${sub_flags[@]}" "${target_flags[@]}" >"$BENCH_OUT/$kind-$t.json" &
  load=$!
  bench_pids+=("$load")
  for i in $(seq 1 $((setup * 10))); do
    [ -e "$ready" ] && break
    kill -0 "$load" 2>/dev/null || break
    sleep 0.1
  done
  held=""
  if [ -e "$ready" ]; then
    sleep 2
    held=$(bench_rss_median_kb "$target_pid" 5)
  else
    bench_log "$t: connections did not settle in ${setup}s"
  fi
  wait "$load" || bench_log "$t: wsload reported an incomplete run"
  bench_stop_pid "$sampler"
  opened=$(bench_json "$BENCH_OUT/$kind-$t.json" 'd.connections.opened')
  failed=$(bench_json "$BENCH_OUT/$kind-$t.json" 'd.connections.failed')
  per=""
  if [ -n "$held" ] && [ "${opened:-0}" -gt 0 ]; then
    per=$(( (held - base) * 1024 / opened ))
  fi
  printf '%-12s %8s %8s %12s %12s %10s\n' "$t" "$opened" "$failed" "$base" "${held:-?}" "${per:-?}"
  [ $first = 1 ] || echo "," >>"$summary"
  first=0
  printf '{"target":"%s","connections":%s,"opened":%s,"failed":%s,"subscribed":%s,"rss_baseline_kb":%s,"rss_held_kb":%s,"bytes_per_connection":%s}\n' \
    "$t" "$N" "$opened" "$failed" "$([ "$SUBSCRIBE" = 1 ] && echo true || echo false)" \
    "$base" "${held:-null}" "${per:-null}" >>"$summary"
  bench_stop_target
done
echo "]" >>"$summary"
bench_log "results in $BENCH_OUT"
