#!/usr/bin/env bash
# What retention costs an idle daemon whose store remembers many topics.
#
# Topic rows stay in the store forever (a topic keeps its epoch and seq across restarts),
# so a daemon that served a million run topics has a million rows, nearly all without
# events once retention took them. This starts the daemon once on a fresh data dir (to
# create the schema), stops it, adds TOPICS such rows with the sqlite3 shell (head_seq
# 100, first_seq 101: their 100 events went to retention), starts it again on that file
# and holds it for HOLD seconds. Before that restart it drops the index of the topics
# holding events (topics_live) when the file has one, so that a build which keeps one
# rebuilds it at open, as it does for a file an older build wrote; the time its log gives
# for that is reported. It then reports what retention did meanwhile (the
# daemon's /metrics) and the CPU the daemon used (from /proc). With RATE > 0 one wsload
# publisher sends RATE publishes/s to 10 other topics meanwhile, and its ack latency
# (publish to durable puback) is reported too: a retention slice in progress holds the
# commits queued behind it. With RATE 0 (the default) nothing connects.
#
# usage: tests/bench/run-idle-topics.sh
# env:   TOPICS (1000000), HOLD (20 s), RATE (0), plus lib.sh's BUILD, COORDINATOR_BIN,
#        WSLOAD, BENCH_OUT.
# Output: one line on stdout; idle-topics.json, idle-topics.metrics.txt and, with RATE,
# idle-topics-wsload.json in BENCH_OUT.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

TOPICS=${TOPICS:-1000000}
HOLD=${HOLD:-20}
RATE=${RATE:-0}
bench_need_whole TOPICS HOLD RATE
[ "$RATE" = 0 ] || bench_need_wsload
command -v sqlite3 >/dev/null || { bench_log "needs the sqlite3 shell (scripts/deps.sh installs it)"; exit 1; }

cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat"; }
metric() { awk -v m="$1" '$1 == m {print $2}' "$BENCH_OUT/idle-topics.metrics.txt"; }

name=idle-topics
bench_start_coordinator "$name" || exit 1
bench_stop_pid "$target_pid"
db=$bench_tmp/$name/data/coordinator.db
t0=$(date +%s.%N)
sqlite3 "$db" "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < $TOPICS)
  INSERT INTO topics(name, epoch, head_seq, first_seq)
  SELECT 'bench/run-' || x, '0123456789abcdef', 100, 101 FROM c;"
bench_log "$TOPICS topics added in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b - a}') s"
sqlite3 "$db" "DROP INDEX IF EXISTS topics_live;"

# The same data dir again (bench_start_coordinator keeps it for the same name); info
# logs for the index's build time.
COORDINATOR_LOG_LEVEL=info bench_start_coordinator "$name" || exit 1
index_ms=$(grep -o '"msg":"index of the topics holding events built","ms":[0-9]*' \
  "$BENCH_OUT/$name.log" | tail -1 | grep -o '[0-9]*$' || true)
cpu0=$(cpu_s "$target_pid")
ack="null"
if [ "$RATE" = 0 ]; then
  sleep "$HOLD"
else
  "$WSLOAD" --mode pub --url "$target_url" --conns 0 --topics 10 --pubs 1 --rate "$RATE" \
    --duration "$HOLD" --warmup 1 --grace 5 --quiet --topic-prefix "bench/idle-topics-$RANDOM-t" \
    >"$BENCH_OUT/idle-topics-wsload.json" || bench_log "wsload reported an incomplete run"
  ack=$(bench_json "$BENCH_OUT/idle-topics-wsload.json" 'd.ack_latency_ms || null')
fi
cpu1=$(cpu_s "$target_pid")
curl -fsS --max-time 5 "http://127.0.0.1:$target_port/metrics" >"$BENCH_OUT/idle-topics.metrics.txt"
bench_stop_pid "$target_pid"

slices=$(metric coord_store_retention_slices_total)
seconds=$(metric coord_store_retention_seconds_total)
examined=$(metric coord_store_retention_topics_total)
cpu=$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN{printf "%.2f", b - a}')
cat >"$BENCH_OUT/idle-topics.json" <<JSON
{"topics": $TOPICS, "hold_s": $HOLD, "rate": $RATE, "index_build_ms": ${index_ms:-null}, "daemon_cpu_s": $cpu,
 "retention_slices": ${slices:-null}, "retention_seconds": ${seconds:-null},
 "retention_topics_examined": ${examined:-null}, "ack_latency_ms": $ack}
JSON
printf 'topics %s (index built at open in %s ms), %s s at %s publishes/s: daemon CPU %s s, retention %s slices, %s s, %s topics examined' \
  "$TOPICS" "${index_ms:--}" "$HOLD" "$RATE" "$cpu" "${slices:--}" "${seconds:--}" "${examined:--}"
if [ "$RATE" = 0 ]; then echo; else
  bench_json "$BENCH_OUT/idle-topics.json" '", ack p50 " + d.ack_latency_ms.p50 + " ms, p99 " + d.ack_latency_ms.p99 + " ms, p99.9 " + d.ack_latency_ms.p99_9 + " ms"'
fi
bench_log "results in $BENCH_OUT"
