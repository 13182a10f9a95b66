#!/usr/bin/env bash
# Samples a process's resident set size (VmRSS from /proc/PID/status) over time.
#   rss.sh PID [INTERVAL_S] [DURATION_S]   one "elapsed_s rss_kB" line per sample;
#                                          stops after DURATION_S (default 60) or when
#                                          PID exits
#   rss.sh --once PID                      one number: RSS in kB now
set -euo pipefail
if [ "${1:-}" = "--once" ]; then
  awk '/^VmRSS:/{print $2}' "/proc/$2/status"
  exit 0
fi
if [ $# -lt 1 ] || [ "${1:-}" = "--help" ]; then
  sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
pid=$1 interval=${2:-1} duration=${3:-60}
start=$(date +%s.%N)
while :; do
  now=$(date +%s.%N)
  elapsed=$(awk -v a="$start" -v b="$now" 'BEGIN{printf "%.2f", b - a}')
  rss=$(awk '/^VmRSS:/{print $2}' "/proc/$pid/status" 2>/dev/null) || exit 0
  [ -n "$rss" ] || exit 0
  echo "$elapsed $rss"
  awk -v e="$elapsed" -v d="$duration" 'BEGIN{exit !(e >= d)}' && exit 0
  sleep "$interval"
done
