#!/usr/bin/env bash
# Where the daemon's memory per WebSocket connection goes (docs/benchmarks.md, S3 and idle).
#
# Starts the daemon under valgrind's massif heap profiler on a free loopback port, opens N
# connections with wsload (subscribed to one of TOPICS topics when SUBSCRIBE=1), and prints
# the heap at its peak by allocation site, as bytes per connection. Valgrind makes the
# daemon about 30x slower, so N is small and connections open at 300/s; per-connection
# sizes do not depend on N. wsload stops by itself; everything is stopped by PID.
#
# usage: tests/bench/run-memprofile.sh
# env:   N (2000), SUBSCRIBE (1), TOPICS (100), plus lib.sh's BUILD, COORDINATOR_BIN,
#        WSLOAD, BENCH_OUT.
# Output: the table on stdout; massif.out and massif.txt (ms_print) in BENCH_OUT.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

N=${N:-2000}
SUBSCRIBE=${SUBSCRIBE:-1}
TOPICS=${TOPICS:-100}
command -v valgrind >/dev/null || { bench_log "valgrind is not installed (apt-get install valgrind)"; exit 1; }
bench_need_wsload

real_bin=$COORDINATOR_BIN
wrapper=$bench_tmp/coordinator-massif
cat >"$wrapper" <<SH
#!/bin/sh
exec valgrind --tool=massif --depth=14 --threshold=0.2 --detailed-freq=1 --max-snapshots=60 \
  --massif-out-file="$BENCH_OUT/massif.out" "$real_bin" "\$@"
SH
chmod +x "$wrapper"
COORDINATOR_BIN=$wrapper
bench_start_coordinator memprofile

sub_flags=()
[ "$SUBSCRIBE" = 1 ] && sub_flags=(--subscribe --topics "$TOPICS")
"$WSLOAD" --mode idle --url "$target_url" --conns "$N" --workers 1 --conn-rate 300 \
  --connect-timeout 30 --duration 5 --quiet "${sub_flags[@]}" >"$BENCH_OUT/memprofile-wsload.json"
opened=$(bench_json "$BENCH_OUT/memprofile-wsload.json" 'd.connections.opened')
bench_stop_target
ms_print "$BENCH_OUT/massif.out" >"$BENCH_OUT/massif.txt"

# The peak snapshot's tree, four levels deep, nodes of at least 8 bytes per connection ("->NN.NN% (BYTES) ADDR: FUNCTION (WHERE)"):
# each node is labelled with the first named frame below it (lws's internals have no
# symbols in Debian's build, so its allocations show the lws API they came through).
node - "$BENCH_OUT/massif.txt" "$opened" <<'JS'
const fs = require('fs');
const lines = fs.readFileSync(process.argv[2], 'utf8').split('\n');
const opened = Number(process.argv[3]);
const id = ((lines.find((l) => l.includes('(peak)')) || '').match(/(\d+) \(peak\)/) || [])[1];
const start = lines.findIndex((l) => new RegExp(`^\\s*${id}\\s+[\\d,]+\\s+[\\d,]+`).test(l));
console.log(`connections: ${opened}`);
console.log('bytes/conn  allocation site (heap at its peak, valgrind massif)');
for (let i = start + 2; i < lines.length && !/^-{20,}/.test(lines[i]); i++) {
  const node = lines[i].match(/^((?:\| )*)->\s*[\d.]+% \(([\d,]+)B\) (.*)$/);
  const depth = node ? node[1].length / 2 : 0;
  if (!node || depth > 3 || Number(node[2].replace(/,/g, '')) < 8 * opened) continue;
  let where = node[3];
  for (let j = i; j < Math.min(i + 20, lines.length); j++) {
    const f = lines[j].match(/0x[0-9A-Fa-f]+: ([A-Za-z_]\w*) \(([^)]*)\)/);
    if (f && !/^(xmalloc|xcalloc|xrealloc|xstrdup|xstrndup|malloc|calloc|realloc)$/.test(f[1])) {
      where = `${f[1]} (${f[2].split('/').pop()})`;
      break;
    }
  }
  const bytes = Number(node[2].replace(/,/g, ''));
  console.log(`${(bytes / opened).toFixed(0).padStart(10)}  ${'  '.repeat(depth)}${where}`);
}
JS
bench_log "results in $BENCH_OUT (massif.txt)"
