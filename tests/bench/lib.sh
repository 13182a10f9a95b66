# Shared helpers for the benchmark drivers (run-idle.sh, run-pubsub.sh, run-all.sh).
# Sourced, not run. Everything started here is recorded by PID and stopped by PID on exit;
# every target is on loopback; every wait is bounded.
#
# Environment (all optional):
#   BUILD            build directory relative to the repo root (default build)
#   COORDINATOR_BIN  daemon binary (default $BUILD/coordinator/coordinator)
#   WSLOAD           load client (default $BUILD/tests/bench/wsload)
#   BENCH_OUT        folder for results (default tests/artifacts/bench/<timestamp>)

bench_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in /*) bench_build=$BUILD ;; *) bench_build=$bench_root/$BUILD ;; esac
COORDINATOR_BIN=${COORDINATOR_BIN:-$bench_build/coordinator/coordinator}
WSLOAD=${WSLOAD:-$bench_build/tests/bench/wsload}
BENCH_OUT=${BENCH_OUT:-$bench_root/tests/artifacts/bench/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$BENCH_OUT"
bench_tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench.XXXXXX")
bench_pids=()
target_flags=() # extra wsload flags the current target needs

bench_log() { echo "bench: $*" >&2; }

# Exits unless each named variable holds a whole number: bench_need_whole TOPICS HOLD.
bench_need_whole() {
  local v
  for v in "$@"; do
    case "${!v}" in '' | *[!0-9]*) bench_log "$v must be a whole number (got '${!v}')"; exit 1 ;; esac
  done
}

# Exits with a hint when the load client is not built.
bench_need_wsload() {
  [ -x "$WSLOAD" ] || { bench_log "no wsload at $WSLOAD (cmake --build $BUILD --target wsload)"; exit 1; }
}

# Stops one PID we started: SIGTERM, up to 10 s for it to exit, then SIGKILL.
bench_stop_pid() {
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    bench_log "pid $pid ignored SIGTERM for 10 s; SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

bench_cleanup() {
  local i
  for ((i = ${#bench_pids[@]} - 1; i >= 0; i--)); do bench_stop_pid "${bench_pids[$i]}"; done
  bench_pids=()
  rm -rf "$bench_tmp"
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

# Prints a TCP port that was free on 127.0.0.1 a moment ago.
bench_free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

# Waits until URL answers 2xx, at most $2 seconds (default 20); polls every 0.1 s.
bench_wait_http() {
  local url=$1 limit=${2:-20} i
  for i in $(seq 1 $((limit * 10))); do
    curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null && return 0
    sleep 0.1
  done
  bench_log "$url did not answer within ${limit}s"
  return 1
}

# VmRSS of a PID in kB (empty when it is gone).
bench_rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$1/status" 2>/dev/null; }

# Median of N samples of a PID's RSS, one every 0.5 s.
bench_rss_median_kb() {
  local pid=$1 n=${2:-5} i
  for i in $(seq 1 "$n"); do
    bench_rss_kb "$pid"
    if [ "$i" -lt "$n" ]; then sleep 0.5; fi
  done | sort -n | awk '{a[NR]=$1} END{if (NR) print a[int((NR+1)/2)]}'
}

# Reads a field from a JSON file: bench_json FILE 'd.connections.opened'.
bench_json() {
  node -e 'const d=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));const v=eval(process.argv[2]);console.log(typeof v==="object"?JSON.stringify(v):v)' "$1" "$2"
}

# Starts the daemon on a free loopback port with a fresh data dir. Sets target_pid,
# target_url, target_port. $1: a name for logs. Extra config JSON (merged at the top
# level) may be given in COORD_BENCH_CONFIG.
bench_start_coordinator() {
  local name=${1:-coordinator} port dir
  target_flags=()
  if [ ! -x "$COORDINATOR_BIN" ]; then
    bench_log "no daemon binary at $COORDINATOR_BIN (build it first)"
    return 1
  fi
  port=$(bench_free_port)
  dir=$bench_tmp/$name
  mkdir -p "$dir/data" "$dir/workflows"
  # Benchmarks hold silent connections and publish fast: no idle timeout, limits out of
  # the way; no workflows (the examples need the agent profiles of examples/coordinator.json,
  # and no benchmark here runs one; one that does names its own folder in
  # COORD_BENCH_CONFIG). Everything else stays at the documented defaults.
  local wf="\"workflows_dir\": \"$dir/workflows\","
  case "${COORD_BENCH_CONFIG:-}" in *'"workflows_dir"'*) wf="" ;; esac
  cat >"$dir/config.json" <<JSON
{
  "listen": "127.0.0.1:$port",
  "data_dir": "$dir/data",
  "log_level": "warn",
  "web_root": "",
  $wf
  "limits": {
    "max_connections": 100000,
    "idle_timeout_ms": 0,
    "publish_rate": 100000000, "publish_burst": 100000000,
    "topic_publish_rate": 100000000, "topic_publish_burst": 100000000
  }${COORD_BENCH_CONFIG:+,
  $COORD_BENCH_CONFIG}
}
JSON
  "$COORDINATOR_BIN" --config "$dir/config.json" 2>"$BENCH_OUT/$name.log" &
  target_pid=$!
  bench_pids+=("$target_pid")
  target_port=$port
  target_url="ws://127.0.0.1:$port/v1/ws"
  if ! bench_wait_http "http://127.0.0.1:$port/readyz" 20; then
    bench_log "$name did not become ready; log: $BENCH_OUT/$name.log"
    return 1
  fi
}

# Installs Debian's redis-server when missing, without letting the package start its
# service (policy-rc.d says no while apt-get runs).
bench_need_redis() {
  command -v redis-server >/dev/null && return 0
  bench_log "installing redis-server (Debian package)"
  local sudo="" made_policy=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
    made_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    redis-server >/dev/null || { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
    $sudo apt-get install -y -qq --no-install-recommends redis-server >/dev/null; }
  local rc=$?
  [ -n "$made_policy" ] && $sudo rm -f /usr/sbin/policy-rc.d
  return $rc
}

# Starts a private redis-server (no persistence) and the Node ws + Redis peer on free
# loopback ports. Sets target_pid (the node process), redis_pid, target_url, target_port.
bench_start_peer() {
  local name=${1:-peer} rport port i
  target_flags=()
  bench_need_redis || return 1
  if [ ! -d "$bench_root/tests/node_modules/ioredis" ]; then
    (cd "$bench_root/tests" && npm ci --no-audit --no-fund --loglevel=error) || return 1
  fi
  rport=$(bench_free_port)
  mkdir -p "$bench_tmp/$name-redis"
  redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$bench_tmp/$name-redis" --maxclients 1000 >"$BENCH_OUT/$name-redis.log" 2>&1 &
  redis_pid=$!
  bench_pids+=("$redis_pid")
  for i in $(seq 1 100); do
    redis-cli -p "$rport" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  port=$(bench_free_port)
  node "$bench_root/tests/bench/peer-node-ws-redis.mjs" --port "$port" --redis-port "$rport" ${PEER_FLAGS:-} \
    2>"$BENCH_OUT/$name.log" &
  target_pid=$!
  bench_pids+=("$target_pid")
  target_port=$port
  target_url="ws://127.0.0.1:$port/v1/ws"
  bench_wait_http "http://127.0.0.1:$port/readyz" 20
}

# Starts Debian's nats-server (installed when missing) with its WebSocket listener on
# free loopback ports; for idle comparisons only (wsload --protocol nats). Sets
# target_pid, target_url, target_port, target_flags.
bench_start_nats() {
  local name=${1:-nats} cport hport wport dir=$bench_tmp/${1:-nats}
  if ! command -v nats-server >/dev/null; then
    bench_log "installing nats-server (Debian package)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nats-server \
      >/dev/null || return 1
  fi
  cport=$(bench_free_port)
  hport=$(bench_free_port)
  wport=$(bench_free_port)
  mkdir -p "$dir"
  cat >"$dir/nats.conf" <<CONF
listen: 127.0.0.1:$cport
http: 127.0.0.1:$hport
max_connections: 100000
websocket { listen: "127.0.0.1:$wport", no_tls: true }
CONF
  nats-server -c "$dir/nats.conf" 2>"$BENCH_OUT/$name.log" &
  target_pid=$!
  bench_pids+=("$target_pid")
  target_port=$wport
  target_url="ws://127.0.0.1:$wport/"
  target_flags=(--protocol nats)
  bench_wait_http "http://127.0.0.1:$hport/healthz" 20
}

# Stops the current target (and its redis, if any) and forgets their PIDs.
bench_stop_target() {
  local p keep=()
  if [ -n "${target_external:-}" ]; then # not ours: never stopped here
    target_external=""
    return 0
  fi
  bench_stop_pid "$target_pid"
  [ -n "${redis_pid:-}" ] && bench_stop_pid "$redis_pid"
  for p in "${bench_pids[@]}"; do
    [ "$p" = "$target_pid" ] || [ "$p" = "${redis_pid:-}" ] || keep+=("$p")
  done
  bench_pids=("${keep[@]}")
  redis_pid=""
}

# Uses a server started by someone else, speaking the same protocol subset as the Node
# peer (sub, pub/puback, ev, ping), at EXTERNAL_URL (ws://127.0.0.1:PORT/PATH, loopback
# only). EXTERNAL_PID, when given, is only read for CPU time; the server is never started
# or stopped here. For peers that may not be built by this repository's scripts.
bench_use_external() {
  case "${EXTERNAL_URL:-}" in
    ws://127.*|ws://localhost[:/]*) ;;
    *) bench_log "EXTERNAL_URL must be a ws:// loopback URL (got '${EXTERNAL_URL:-}')"; return 1 ;;
  esac
  target_flags=()
  target_external=1
  target_url=$EXTERNAL_URL
  target_pid=${EXTERNAL_PID:-}
}

# Whether the target at target_url accepts a WebSocket upgrade (one connection).
bench_ws_works() {
  local out=$bench_tmp/probe.json
  "$WSLOAD" --mode idle --url "$target_url" --conns 1 --workers 1 --duration 0.1 \
    --connect-timeout 3 --quiet "${target_flags[@]}" >"$out" 2>/dev/null || true
  [ "$(bench_json "$out" 'd.connections.opened' 2>/dev/null)" = "1" ]
}
