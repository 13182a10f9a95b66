#!/usr/bin/env python3
"""Which tables and indexes the frames of a SQLite WAL belong to.

usage: tests/bench/wal-frames.py DB   (DB-wal beside it; give copies of a running daemon's
       files, e.g. cp data/coordinator.db* /tmp/snap/ 10 s into a run)

Reads the frames of the log's current generation (those whose salts match the header),
maps each frame's page to its b-tree with SQLite's dbstat table over DB alone (so as the
file was before the log), and prints frames per (b-tree, page type), with the commits.
Pages dbstat does not know (free, or past the end of DB) count as "free/new"."""
import collections
import shutil
import sqlite3
import struct
import sys
import tempfile

db = sys.argv[1]
with open(db + "-wal", "rb") as f:
    _, _, page_size, _, salt1, salt2, _, _ = struct.unpack(">8I", f.read(32))
    frames = collections.Counter()
    commits = 0
    while True:
        hdr = f.read(24)
        if len(hdr) < 24:
            break
        page, commit, s1, s2, _, _ = struct.unpack(">6I", hdr)
        if (s1, s2) != (salt1, salt2):
            break
        f.seek(page_size, 1)
        frames[page] += 1
        commits += bool(commit)
with tempfile.TemporaryDirectory() as tmp:  # dbstat over the file alone, without its log
    copy = tmp + "/db"
    shutil.copy(db, copy)
    owner = {p: (n, t) for n, p, t in sqlite3.connect(copy).execute("SELECT name, pageno, pagetype FROM dbstat")}
by = collections.Counter()
for page, n in frames.items():
    by[owner.get(page, ("free/new", ""))] += n
total = sum(by.values())
print(f"frames {total}, commits {commits}, frames per commit {total / max(commits, 1):.1f}")
for (name, kind), n in by.most_common():
    print(f"{n:9d} {100 * n / total:5.1f}%  {name} {kind}")
