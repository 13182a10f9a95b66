#!/usr/bin/env bash
# How long a /metrics scrape takes while publishers keep the store busy.
#
# The scrape runs on the event loop, so whatever it waits for, every connection waits for
# too. This starts the daemon, has 8 coord-bulk publishers offer RATE events/s to 100
# topics for DURATION seconds (the commit thread then holds the store most of the time:
# commits, retention slices, WAL settles) and, from the third second on, scrapes
# /metrics SCRAPES times, 0.5 s apart, timing each with curl. With READ=1 it times
# HTTP reads of one of the publishers' topics instead (GET .../events?after=0&limit=100,
# the store read of a replay), which also run on the loop.
#
# usage: tests/bench/run-scrape.sh
# env:   RATE (300000), DURATION (15 s), SCRAPES (20), READ (0), plus lib.sh's BUILD,
#        COORDINATOR_BIN, WSLOAD, BENCH_OUT.
# Output: one line on stdout (scrape time median and max, acknowledged publishes/s, and
# with READ=1 the reads the daemon answered once a WAL settle let go of its reader);
# scrape-times.txt (ms, one per scrape) and scrape-wsload.json in BENCH_OUT.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

RATE=${RATE:-300000}
DURATION=${DURATION:-15}
SCRAPES=${SCRAPES:-20}
READ=${READ:-0}
bench_need_whole RATE DURATION SCRAPES READ
[ $((SCRAPES / 2 + 3)) -lt "$DURATION" ] || { bench_log "SCRAPES / 2 + 3 must stay below DURATION"; exit 1; }
bench_need_wsload

bench_start_coordinator scrape || exit 1
room=scrape-$RANDOM-t
path=/metrics
[ "$READ" = 0 ] || path="/v1/streams/bench/${room}0/events?after=0&limit=100"
"$WSLOAD" --mode pub --url "$target_url" --conns 0 --topics 100 --pubs 8 --pub-workers 2 \
  --rate "$RATE" --duration "$DURATION" --warmup 1 --grace 5 --quiet --pub-subprotocol coord-bulk \
  --topic-prefix "bench/$room" >"$BENCH_OUT/scrape-wsload.json" &
load=$!
bench_pids+=("$load")
sleep 3
: >"$BENCH_OUT/scrape-times.txt"
for _ in $(seq 1 "$SCRAPES"); do
  curl -fsS -o /dev/null --max-time 10 -w '%{time_total}\n' "http://127.0.0.1:$target_port$path" |
    awk '{printf "%.2f\n", $1 * 1000}' >>"$BENCH_OUT/scrape-times.txt"
  sleep 0.5
done
# Reads answered later because a WAL settle held the store's reader (READ=1).
deferred=
[ "$READ" = 0 ] || deferred=$(curl -fsS --max-time 5 "http://127.0.0.1:$target_port/metrics" |
  awk '$1 == "coord_stream_http_reads_deferred_total" {print $2}' || true)
wait "$load" || bench_log "wsload reported an incomplete run"
bench_stop_pid "$target_pid"

acked=$(bench_json "$BENCH_OUT/scrape-wsload.json" 'd.publish.acked_per_s')
what=scrape
[ "$READ" = 0 ] || what=read
sort -n "$BENCH_OUT/scrape-times.txt" | awk -v acked="$acked" -v what="$what" -v deferred="$deferred" '
  {v[NR] = $1}
  END {printf "%s ms: median %.2f, max %.2f (%d requests); acknowledged %s/s%s\n",
       what, v[int((NR + 1) / 2)], v[NR], NR, acked, deferred == "" ? "" : "; answered later: " deferred}'
bench_log "results in $BENCH_OUT"
