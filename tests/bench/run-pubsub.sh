#!/usr/bin/env bash
# Publish/subscribe scenarios against the daemon and the Node ws + Redis peer (issue 3
# "Benchmark"): SUBS subscribers spread over TOPICS topics, PUBS publishers sending RATE
# publishes/s in total for DURATION seconds; wsload measures delivery latency (publisher's
# t0 to receipt), puback latency, and loss/duplicates/reordering against the seqs that
# were acknowledged. With SUBS=0 it measures publishing alone (durable throughput).
#
# Several rates may be tried in one go (RATES="100 200 400"): each is a separate bounded
# run on fresh topics; a rate is "held" when nothing is lost, duplicated or reordered, the
# acknowledged rate is at least 99% of the target, and delivery p99 <= MAX_P99_MS.
# With STOP_ON_FAIL=1 the first rate not held ends that target's series.
#
# usage: tests/bench/run-pubsub.sh
# env:   NAME (pubsub), SUBS (5000), TOPICS (1), PUBS (1), RATES (200), DURATION (20 s),
#        WARMUP (2 s, left out of latency), PAYLOAD (200 bytes), MAX_P99_MS (50),
#        STOP_ON_FAIL (0), TARGETS ("coordinator peer"; "external" measures a server
#        already running at EXTERNAL_URL, CPU read from EXTERNAL_PID when set), RATES_coordinator and RATES_peer
#        (per-target rate lists instead of RATES), PUB_SUBPROTOCOL (publishers ask for it,
#        e.g. coord-bulk), WORKERS (wsload --workers,
#        default: wsload's), PUB_WORKERS (1), plus lib.sh's BUILD, COORDINATOR_BIN,
#        WSLOAD, BENCH_OUT.
#        PERF_STAT_EVENTS (e.g. "task-clock,syscalls:sys_enter_pwrite64"): also counts these
#        perf events per thread of the target for PERF_STAT_WINDOW seconds (5), starting
#        PERF_STAT_DELAY seconds (5) after wsload starts (so after its connection setup and
#        warmup when the delay covers them), into <NAME>-<target>-r<rate>.perfstat.txt.
#        SNAPSHOT_AT (seconds after wsload starts): the target's VmRSS and /metrics at that
#        moment, into <NAME>-<target>-r<rate>.snapshot.txt.
#        WAKE_PROBE=1: runs wakeprobe beside the run (WAKE_PROBE_SAMPLES sleeps of 1 ms,
#        10000, starting WAKE_PROBE_DELAY seconds (5) after wsload starts): how late the
#        machine woke a sleeping process in that moment, into
#        <NAME>-<target>-r<rate>.wake.json and the summary's "wake" field.
# Output: a table on stdout; <NAME>-<target>-r<rate>.json per run and <NAME>-summary.json,
# and <NAME>-<target>-r<rate>.metrics.txt, the target's /metrics after the run when it
# serves them.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

NAME=${NAME:-pubsub}
SUBS=${SUBS:-5000}
TOPICS=${TOPICS:-1}
PUBS=${PUBS:-1}
RATES=${RATES:-200}
DURATION=${DURATION:-20}
WARMUP=${WARMUP:-2}
PAYLOAD=${PAYLOAD:-200}
MAX_P99_MS=${MAX_P99_MS:-50}
STOP_ON_FAIL=${STOP_ON_FAIL:-0}
TARGETS=${TARGETS:-coordinator peer}
WAKE_PROBE=${WAKE_PROBE:-0}
WAKEPROBE=${WAKEPROBE:-$bench_build/tests/bench/wakeprobe}
bench_need_wsload
if [ "$WAKE_PROBE" = 1 ]; then
  [ -x "$WAKEPROBE" ] || { bench_log "no wakeprobe at $WAKEPROBE (cmake --build $BUILD --target wakeprobe)"; exit 1; }
  WAKE_PROBE_DELAY=${WAKE_PROBE_DELAY:-5}
  WAKE_PROBE_SAMPLES=${WAKE_PROBE_SAMPLES:-10000}
  bench_need_whole WAKE_PROBE_DELAY WAKE_PROBE_SAMPLES
  # 1 ms sleeps overrun by about 0.1 ms each: warn when the probe would outlast the run
  # (it would then measure the wind-down, and the run would wait for it).
  awk -v d="$WAKE_PROBE_DELAY" -v n="$WAKE_PROBE_SAMPLES" -v w="$WARMUP" -v t="$DURATION" \
    'BEGIN { exit !(d + n * 0.0011 > w + t + 5) }' &&
    bench_log "WAKE_PROBE: ${WAKE_PROBE_DELAY} s + ${WAKE_PROBE_SAMPLES} sleeps of 1 ms may outlast the run (setup + WARMUP + DURATION)"
fi

# CPU seconds (user + system) a PID has used so far.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat" 2>/dev/null; }

mode=pubsub
[ "$SUBS" = 0 ] && mode=pub
extra=()
[ -n "${WORKERS:-}" ] && extra+=(--workers "$WORKERS")
[ -n "${PUB_SUBPROTOCOL:-}" ] && extra+=(--pub-subprotocol "$PUB_SUBPROTOCOL")
summary=$BENCH_OUT/$NAME-summary.json
echo "[" >"$summary"
first=1
printf '%-12s %7s %8s %10s %10s %6s %4s %4s %8s %8s %8s %8s %8s %6s %5s\n' \
  target rate acked/s delivered expected lost dup ord p50_ms p99_ms p99.9_ms max_ms ack_p99 cpu_s held

for t in $TARGETS; do
  case "$t" in
    coordinator) bench_start_coordinator "$NAME-coordinator" || { bench_log "skip coordinator"; continue; } ;;
    peer) bench_start_peer "$NAME-peer" || { bench_log "skip peer"; bench_stop_target; continue; } ;;
    nats) bench_log "nats: wsload speaks NATS for idle runs only; skipped"; continue ;;
    external) bench_use_external || continue ;;
    *) bench_log "unknown target $t"; continue ;;
  esac
  if ! bench_ws_works; then
    bench_log "$t does not accept WebSocket upgrades on /v1/ws yet: skipped"
    bench_stop_target
    continue
  fi
  rates_var=RATES_$t
  for rate in ${!rates_var:-$RATES}; do
    out=$BENCH_OUT/$NAME-$t-r$rate.json
    cpu0=$(cpu_s "$target_pid")
    stat_pid=
    if [ -n "${PERF_STAT_EVENTS:-}" ] && [ -n "${target_pid:-}" ]; then
      (sleep "${PERF_STAT_DELAY:-5}" && exec perf stat -e "$PERF_STAT_EVENTS" --per-thread -p "$target_pid" \
        -o "${out%.json}.perfstat.txt" -- sleep "${PERF_STAT_WINDOW:-5}") >/dev/null 2>&1 &
      stat_pid=$!
    fi
    snap_pid=
    if [ -n "${SNAPSHOT_AT:-}" ] && [ -n "${target_pid:-}" ]; then
      http=${target_url#ws://}
      (sleep "$SNAPSHOT_AT" && grep VmRSS "/proc/$target_pid/status" &&
        curl -sf --max-time 5 "http://${http%%/*}/metrics") >"${out%.json}.snapshot.txt" 2>/dev/null &
      snap_pid=$!
    fi
    wake_pid=
    if [ "$WAKE_PROBE" = 1 ]; then
      (sleep "$WAKE_PROBE_DELAY" && exec "$WAKEPROBE" --samples "$WAKE_PROBE_SAMPLES") \
        >"${out%.json}.wake.json" 2>"${out%.json}.wake.err" &
      wake_pid=$!
    fi
    "$WSLOAD" --mode "$mode" --url "$target_url" --conns "$SUBS" --topics "$TOPICS" \
      --pubs "$PUBS" --pub-workers "${PUB_WORKERS:-1}" --rate "$rate" --duration "$DURATION" \
      --warmup "$WARMUP" --payload "$PAYLOAD" --grace 5 --quiet \
      --topic-prefix "bench/$NAME-$rate-$RANDOM-t" "${extra[@]}" >"$out" ||
      bench_log "$t at $rate/s: wsload reported an incomplete run"
    cpu1=$(cpu_s "$target_pid")
    [ -z "$stat_pid" ] || wait "$stat_pid" || bench_log "perf stat failed (${out%.json}.perfstat.txt)"
    [ -z "$snap_pid" ] || wait "$snap_pid" || bench_log "no snapshot at ${SNAPSHOT_AT}s (the run ended first?)"
    wake=null
    if [ -n "$wake_pid" ]; then
      if wait "$wake_pid" && [ -s "${out%.json}.wake.json" ]; then
        wake=$(cat "${out%.json}.wake.json")
        bench_log "$t at $rate/s: wake-up lateness beside the run (us): $(node -e '
          const w = JSON.parse(process.argv[1]).late_us;
          console.log(`p50 ${w.p50} p99 ${w.p99} p99.9 ${w.p99_9} max ${w.max}`);' "$wake")"
      else
        bench_log "wakeprobe failed (${out%.json}.wake.err)"
      fi
    fi
    # The daemon's counters after the run (store commits, retention, WAL), when it has them.
    http=${target_url#ws://}
    curl -sf --max-time 5 "http://${http%%/*}/metrics" >"${out%.json}.metrics.txt" 2>/dev/null ||
      rm -f "${out%.json}.metrics.txt"
    cpu=$(awk -v a="${cpu0:-0}" -v b="${cpu1:-0}" 'BEGIN{printf "%.1f", b - a}')
    read -r acked_s received expected lost dup ord p50 p99 p999 max ackp99 held < <(node -e '
      const d = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
      const rate = Number(process.argv[2]), dur = Number(process.argv[3]), maxp99 = Number(process.argv[4]);
      const e = d.events || {}, l = d.latency_ms || {}, p = d.publish || {}, a = d.ack_latency_ms || {};
      const f = (v) => (v === undefined || v === null ? "-" : typeof v === "number" && !Number.isInteger(v) ? v.toFixed(2) : v);
      const sub = e.received !== undefined;
      const held = (p.acked || 0) >= 0.99 * rate * dur && (!sub || (e.lost === 0 && e.duplicates === 0 &&
        e.reordered === 0 && (l.p99 ?? Infinity) <= maxp99));
      console.log([f(p.acked_per_s), f(e.received), f(e.expected), f(e.lost), f(e.duplicates),
        f(e.reordered), f(l.p50), f(l.p99), f(l.p99_9), f(l.max), f(a.p99), held ? "yes" : "no"].join(" "));
    ' "$out" "$rate" "$DURATION" "$MAX_P99_MS")
    printf '%-12s %7s %8s %10s %10s %6s %4s %4s %8s %8s %8s %8s %8s %6s %5s\n' \
      "$t" "$rate" "$acked_s" "$received" "$expected" "$lost" "$dup" "$ord" "$p50" "$p99" "$p999" \
      "$max" "$ackp99" "$cpu" "$held"
    [ $first = 1 ] || echo "," >>"$summary"
    first=0
    printf '{"scenario":"%s","target":"%s","subs":%s,"topics":%s,"pubs":%s,"rate":%s,"duration_s":%s,"held":%s,"target_cpu_s":%s,"wake":%s,"wsload":%s}\n' \
      "$NAME" "$t" "$SUBS" "$TOPICS" "$PUBS" "$rate" "$DURATION" \
      "$([ "$held" = yes ] && echo true || echo false)" "$cpu" "$wake" "$(cat "$out")" >>"$summary"
    if [ "$held" != yes ] && [ "$STOP_ON_FAIL" = 1 ]; then break; fi
  done
  bench_stop_target
done
echo "]" >>"$summary"
bench_log "results in $BENCH_OUT"
