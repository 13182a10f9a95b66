#!/usr/bin/env python3
"""p50 and p99 (ms) of the daemon's latency histograms in saved /metrics files.

usage: tests/bench/hist-quantiles.py <file.metrics.txt>...

For each file (run-pubsub.sh keeps the target's /metrics as <name>-<target>-r<rate>.metrics.txt)
prints one line: publish to durable, durable to pull, durable to write (WebSocket), commit
duration and event-loop lag, each as p50 and p99 interpolated linearly inside the
Prometheus bucket that holds the quantile (so a figure is only as fine as the buckets).
"""
import re
import sys

NAMES = ["coord_stream_publish_to_durable_seconds", "coord_stream_durable_to_pull_seconds",
         "coord_stream_durable_to_write_seconds", "coord_stream_commit_seconds",
         "coord_event_loop_lag_seconds"]


def buckets(text, name):
    out = []
    pattern = r'^' + name + r'_bucket\{(?:transport="ws",)?le="([^"]+)"\} (\d+)'
    for m in re.finditer(pattern, text, re.M):
        le = float('inf') if m.group(1) == '+Inf' else float(m.group(1))
        out.append((le, int(m.group(2))))
    return out


def quantile(b, p):
    total = b[-1][1]
    target = p * total
    prev_le, prev_count = 0.0, 0
    for le, count in b:
        if count >= target:
            if le == float('inf'):
                return prev_le
            return prev_le + (le - prev_le) * (target - prev_count) / max(1, count - prev_count)
        prev_le, prev_count = le, count
    return prev_le


def main(paths):
    if not paths:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    for path in paths:
        with open(path, encoding='utf-8') as f:
            text = f.read()
        cells = []
        for name in NAMES:
            b = buckets(text, name)
            if not b or b[-1][1] == 0:
                continue
            short = name.replace('coord_stream_', '').replace('coord_', '').replace('_seconds', '')
            cells.append('%s p50 %.2f p99 %.2f' % (short, quantile(b, .5) * 1e3, quantile(b, .99) * 1e3))
        print(path.rsplit('/', 1)[-1], ' | '.join(cells))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
