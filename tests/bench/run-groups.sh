#!/usr/bin/env bash
# Consumer group dispatch throughput (issue 6 "Done when"): groupload publishes TASKS task
# events to a fresh topic while MEMBERS members of one group ack every delivery; each run
# reports tasks/s acked end to end (first publish to the pong after the last ack) and
# checks exactly-once (every seq once, no redelivery). RUNS repetitions per setting, each
# on its own fresh topic, against one release daemon started here (lib.sh).
#
# usage: tests/bench/run-groups.sh
# env:   MEMBERS (10), TASKS (50000), INFLIGHTS ("1 16 64": per-member max_inflight values
#        tried), PUBLISHERS (2 connections), WINDOW (48 publishes awaiting their puback per
#        publisher: more pubacks waiting make the server slow the client down), PAYLOAD
#        (100 bytes), RUNS (3), COORD_BENCH_CONFIG (default: retention.max_events 2 x TASKS),
#        plus lib.sh's BUILD, COORDINATOR_BIN, BENCH_OUT. GROUPLOAD defaults to
#        $BUILD/tests/bench/groupload.
# Output: a table on stdout; groups-m<M>-i<inflight>-<run>.json per run in BENCH_OUT.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

MEMBERS=${MEMBERS:-10}
TASKS=${TASKS:-50000}
INFLIGHTS=${INFLIGHTS:-1 16 64}
WINDOW=${WINDOW:-48}
PUBLISHERS=${PUBLISHERS:-2}
PAYLOAD=${PAYLOAD:-100}
RUNS=${RUNS:-3}
GROUPLOAD=${GROUPLOAD:-$bench_build/tests/bench/groupload}
[ -x "$GROUPLOAD" ] || { bench_log "no groupload at $GROUPLOAD (build the groupload target)"; exit 1; }

# A group that falls behind beyond retention skips what retention removed (groups.md): keep
# every task of a run so that a slow setting (max_inflight 1) measures dispatch, not loss.
COORD_BENCH_CONFIG=${COORD_BENCH_CONFIG:-"\"streams\": {\"retention\": {\"max_events\": $((TASKS * 2))}}"}
bench_start_coordinator groups-coordinator || exit 1
printf '%-8s %-9s %-4s %10s %9s %6s %5s %8s  %s\n' members inflight run tasks/s seconds lost dup redeliv per_member
for inflight in $INFLIGHTS; do
  for run in $(seq 1 "$RUNS"); do
    out=$BENCH_OUT/groups-m$MEMBERS-i$inflight-$run.json
    "$GROUPLOAD" --port "$target_port" --members "$MEMBERS" --tasks "$TASKS" \
      --max-inflight "$inflight" --publishers "$PUBLISHERS" --window "$WINDOW" --payload "$PAYLOAD" --timeout 300 >"$out" ||
      bench_log "m$MEMBERS i$inflight run $run: incomplete or not exactly-once (see $out)"
    node -e '
      const d = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
      const pm = d.per_member;
      console.log([String(d.members).padEnd(8), String(d.max_inflight).padEnd(9), process.argv[2].padEnd(4),
        String(d.tasks_per_s).padStart(10), d.seconds.toFixed(2).padStart(9), String(d.lost).padStart(6),
        String(d.duplicates).padStart(5), String(d.redelivered).padStart(8),
        ` ${Math.min(...pm)}..${Math.max(...pm)}`].join(" "));' "$out" "$run"
  done
done
