#!/usr/bin/env python3
"""Medians over repeated run-pubsub.sh runs: one line per glob of summary files.

usage: tests/bench/summary-medians.py '<out>/s2-base-*/s2-summary.json' '<out>/s2-new-*/...'

Each <name>-summary.json (run-pubsub.sh, one per BENCH_OUT folder) holds one entry per
target and rate; entries are grouped by both. Prints, per glob, target and rate: the
medians, each followed by the runs' values, of
delivery p50/p99/p99.9 (ms), acknowledgement p99 (ms), acknowledged/s, the target's
CPU seconds and, for runs with WAKE_PROBE=1, the p99 of how late the machine woke a
sleeping process beside the run (wake_p99, ms). Quote each with the glob it came from.
"""
import glob
import json
import statistics
import sys

FIELDS = [("p50", lambda w: w.get("latency_ms", {}).get("p50")),
          ("p99", lambda w: w.get("latency_ms", {}).get("p99")),
          ("p99.9", lambda w: w.get("latency_ms", {}).get("p99_9")),
          ("ack_p99", lambda w: w.get("ack_latency_ms", {}).get("p99")),
          ("acked/s", lambda w: w.get("publish", {}).get("acked_per_s"))]
# Fields of the summary entry itself, beside its "wsload" object.
ENTRY_FIELDS = [("cpu_s", lambda e: e.get("target_cpu_s")),
                ("wake_p99", lambda e: (e.get("wake") or {}).get("late_us", {}).get("p99") / 1e3
                 if (e.get("wake") or {}).get("late_us", {}).get("p99") is not None else None)]


def main(patterns):
    if not patterns:
        sys.exit(__doc__)
    for pat in patterns:
        files = sorted(glob.glob(pat))
        if not files:
            print(f"{pat}: no files")
            continue
        groups = {}
        for f in files:
            for entry in json.load(open(f)):
                groups.setdefault((entry.get("target", "?"), entry["rate"]), []).append(entry)
        for (target, rate), entries in sorted(groups.items()):
            cols = []
            pairs = [(n, lambda e, g=g: g(e["wsload"])) for n, g in FIELDS] + ENTRY_FIELDS
            for name, get in pairs:
                vals = [get(e) for e in entries]
                vals = [v for v in vals if v is not None]
                if vals:
                    runs = ", ".join(f"{v:g}" for v in vals)
                    some = f", {len(vals)} of the runs" if len(vals) < len(entries) else ""
                    cols.append(f"{name} {statistics.median(vals):.2f} ({runs}{some})")
            print(f"{pat} {target} rate {rate}, {len(entries)} runs: " + "; ".join(cols))


if __name__ == "__main__":
    main(sys.argv[1:])
