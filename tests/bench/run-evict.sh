#!/usr/bin/env bash
# How long the loop stalls while many idle topics leave memory at once.
#
# Publishes RATE events/s for DURATION seconds to TOPICS topics (8 coord-bulk publishers,
# nobody subscribed), then holds the daemon idle for IDLE seconds, long enough for every
# topic to pass idle_topic_s (30 s) and be evicted. The daemon's loop-lag histogram
# (coord_event_loop_lag_seconds: how late a 100 ms timer fires) is read before and after
# the idle window, and the difference printed: the samples taken while the topics left.
#
# usage: tests/bench/run-evict.sh
# env:   TOPICS (20000), RATE (100000), DURATION (10 s), IDLE (45 s), plus lib.sh's BUILD,
#        COORDINATOR_BIN, WSLOAD, BENCH_OUT.
# Output: one line on stdout (lag samples per bucket during the idle window, evictions);
# evict-before.metrics.txt, evict-after.metrics.txt and evict-wsload.json in BENCH_OUT.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

TOPICS=${TOPICS:-20000}
RATE=${RATE:-100000}
DURATION=${DURATION:-10}
IDLE=${IDLE:-45}
bench_need_whole TOPICS RATE DURATION IDLE
bench_need_wsload

bench_start_coordinator evict || exit 1
"$WSLOAD" --mode pub --url "$target_url" --conns 0 --topics "$TOPICS" --pubs 8 --pub-workers 2 \
  --rate "$RATE" --duration "$DURATION" --warmup 0 --grace 5 --quiet --pub-subprotocol coord-bulk \
  --topic-prefix "bench/evict-$RANDOM-t" >"$BENCH_OUT/evict-wsload.json" ||
  bench_log "wsload reported an incomplete run"
metrics="http://127.0.0.1:$target_port/metrics"
curl -fsS --max-time 5 "$metrics" >"$BENCH_OUT/evict-before.metrics.txt"
sleep "$IDLE"
curl -fsS --max-time 5 "$metrics" >"$BENCH_OUT/evict-after.metrics.txt"
bench_stop_pid "$target_pid"

# Samples per bucket of the idle window: cumulative counts after minus before, then
# each bucket minus the one below it.
awk '
  /^coord_event_loop_lag_seconds_bucket/ {
    match($0, /le="[^"]+"/); le = substr($0, RSTART + 4, RLENGTH - 5)
    if (FNR == NR) { before[le] = $2 } else { order[++n] = le; after[le] = $2 }
  }
  /^coord_stream_topic_evictions_total/ { if (FNR == NR) eb = $2; else ea = $2 }
  END {
    prev = 0; line = "loop lag samples while idle:"
    for (i = 1; i <= n; i++) {
      c = after[order[i]] - before[order[i]]
      if (c - prev > 0) line = line sprintf(" <=%ss:%d", order[i], c - prev)
      prev = c
    }
    printf "%s; topics evicted %d\n", line, ea - eb
  }' "$BENCH_OUT/evict-before.metrics.txt" "$BENCH_OUT/evict-after.metrics.txt"
bench_log "results in $BENCH_OUT"
