#!/usr/bin/env bash
# Topic and run churn beside bulk publishing: does creating topics or starting workflow
# runs hold up the daemon's loop? Starts the daemon (with a two-step workflow "churn" on
# the mock model), has PUBS coord-bulk publishers send RATE events/s over TOPICS topics for
# DURATION seconds (run-pubsub.sh against it as an external target) and, from 4 s in, runs
# topic-churn.mjs for DURATION - 6 seconds: a ping every 5 ms on one connection, CREATES
# subscriptions per second to new topics on another, and RUNS workflow runs per second
# started over HTTP. Each value of CREATES (a list) is a fresh daemon; CREATES=0 with
# RUNS=0 is the baseline (pings alone). With GROUP_TASKS > 0, groupload also runs in that
# window: 2 publishers put GROUP_TASKS tasks on one topic, which a consumer group of 10
# members takes, 16 in flight each (the daemon then keeps 4 x GROUP_TASKS events per
# topic, so that retention takes none of the group's: the bulk topics are not trimmed).
# With CATCHUPS > 0, catchup-readers.mjs runs in that window too, in a process of its own:
# CATCHUPS connections replay, topic after topic, the 500 events before a bulk topic's
# head, which the daemon reads from its store (slow subscribers catching up).
#
# usage: tests/bench/run-topic-churn.sh
# env:   CREATES ("0 100"), RUNS (0), GROUP_TASKS (0), CATCHUPS (0), RATE (120000), TOPICS (100), PUBS (8),
#        DURATION (20), plus lib.sh's BUILD, COORDINATOR_BIN, WSLOAD, BENCH_OUT, and
#        GROUPLOAD (default $BUILD/tests/bench/groupload).
# Output: one line per run on stdout (acknowledged events/s, then the prober's JSON);
# the publishers' table and files in BENCH_OUT.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

CREATES=${CREATES:-0 100}
RUNS=${RUNS:-0}
GROUP_TASKS=${GROUP_TASKS:-0}
CATCHUPS=${CATCHUPS:-0}
GROUPLOAD=${GROUPLOAD:-$bench_build/tests/bench/groupload}
RATE=${RATE:-120000}
TOPICS=${TOPICS:-100}
PUBS=${PUBS:-8}
DURATION=${DURATION:-20}
bench_need_wsload
export BENCH_OUT
if [ "$DURATION" -lt 8 ]; then
  bench_log "DURATION must be at least 8 s"
  exit 2
fi

# The workflow the runs start: two steps on the mock model, a few tokens each.
mkdir -p "$bench_tmp/wf"
cat >"$bench_tmp/wf/churn.json" <<'JSON'
{"name": "churn", "agents": {"m": {"ref": "churn-mock"}},
 "steps": [{"id": "a", "type": "llm", "agent": "m", "prompt": "go {{ run.id }}"},
           {"id": "b", "type": "llm", "agent": "m", "prompt": "again {{ steps.a.output }}"}]}
JSON
# The config takes each key once: with GROUP_TASKS the script sets "streams" itself.
if [ "$GROUP_TASKS" -gt 0 ] && [[ "${COORD_BENCH_CONFIG:-}" == *'"streams"'* ]]; then
  bench_log "GROUP_TASKS sets \"streams\" (retention) itself: leave it out of COORD_BENCH_CONFIG"
  exit 2
fi
COORD_BENCH_CONFIG="\"workflows_dir\": \"$bench_tmp/wf\", \"runs\": {\"max_runs\": 100000},
  \"agents\": {\"churn-mock\": {\"provider\": \"mock\", \"params\": {\"mock_text\": \"abcdefgh\",
  \"mock_chunk_chars\": 4, \"mock_tokens_per_s\": 1000}}}${COORD_BENCH_CONFIG:+, $COORD_BENCH_CONFIG}"
if [ "$GROUP_TASKS" -gt 0 ]; then
  [ -x "$GROUPLOAD" ] || { bench_log "no groupload at $GROUPLOAD (build the groupload target)"; exit 1; }
  COORD_BENCH_CONFIG="$COORD_BENCH_CONFIG, \"streams\": {\"retention\": {\"max_events\": $((GROUP_TASKS * 4))}}"
fi

for creates in $CREATES; do
  bench_start_coordinator "churn-$creates"
  EXTERNAL_URL=$target_url EXTERNAL_PID=$target_pid TARGETS=external NAME=churn-$creates-pubs \
    SUBS=0 TOPICS=$TOPICS PUBS=$PUBS PUB_WORKERS=2 RATES=$RATE DURATION=$DURATION WARMUP=1 \
    PUB_SUBPROTOCOL=coord-bulk "$bench_root/tests/bench/run-pubsub.sh" >"$BENCH_OUT/churn-$creates-pubs.txt" 2>&1 &
  pubs=$!
  sleep 4
  group=
  if [ "$GROUP_TASKS" -gt 0 ]; then
    "$GROUPLOAD" --port "$target_port" --members 10 --tasks "$GROUP_TASKS" --max-inflight 16 \
      --timeout $((DURATION - 6)) >"$BENCH_OUT/churn-$creates-groups.json" 2>/dev/null &
    group=$!
  fi
  readers=
  if [ "$CATCHUPS" -gt 0 ]; then
    node "$bench_root/tests/bench/catchup-readers.mjs" "$target_url" $((DURATION - 6)) "$CATCHUPS" \
      >"$BENCH_OUT/churn-$creates-catchups.json" &
    readers=$!
  fi
  probe=$(node "$bench_root/tests/bench/topic-churn.mjs" "$target_url" $((DURATION - 6)) "$creates" "$RUNS")
  tasks=
  if [ -n "$group" ]; then
    wait "$group" || bench_log "groupload: incomplete or not exactly-once (see $BENCH_OUT/churn-$creates-groups.json)"
    tasks=" group_tasks/s=$(bench_json "$BENCH_OUT/churn-$creates-groups.json" 'd.tasks_per_s' 2>/dev/null || echo '?')"
  fi
  if [ -n "$readers" ]; then
    wait "$readers" || bench_log "the catch-up readers failed (see $BENCH_OUT/churn-$creates-catchups.json)"
    probe="$probe catchups=$(cat "$BENCH_OUT/churn-$creates-catchups.json")"
  fi
  wait "$pubs" || bench_log "the publishers' run failed (see $BENCH_OUT/churn-$creates-pubs.txt)"
  acked=$(awk '$1 == "external" {print $3}' "$BENCH_OUT/churn-$creates-pubs.txt")
  echo "creates/s=$creates acked/s=${acked:-?}$tasks $probe"
  bench_stop_target
done
bench_log "results in $BENCH_OUT"
