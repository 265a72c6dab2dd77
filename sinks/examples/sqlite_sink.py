#!/usr/bin/env python3
"""An exec sink for hopper: each result a row of a SQLite table.

    hopper run -s jsonl:in.jsonl -o 'exec:python3 sinks/examples/sqlite_sink.py out.db' -- WORKER

hopper writes one record per finished item on stdin, {"id", "ok", "result"
or "error", "attempts"}; this program upserts it into the table `results`
(id primary key, so a record written twice is one row) and answers
{"ok": id} once the transaction that holds it has committed: only then
does hopper acknowledge the item at its source. Records that arrive
together are committed together. Standard library only; the contract is
sources/PROTOCOL.md.
"""
import json
import os
import select
import sqlite3
import sys


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: sqlite_sink.py DATABASE")
    db = sqlite3.connect(sys.argv[1])
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE IF NOT EXISTS results (id TEXT PRIMARY KEY, "
               "ok INTEGER, result TEXT, error TEXT, attempts INTEGER)")
    db.commit()
    out = sys.stdout
    pending = b""
    while True:
        select.select([0], [], [])
        chunk = os.read(0, 1 << 16)
        if not chunk:
            return  # stdin closed: the run is over
        pending += chunk
        *lines, pending = pending.split(b"\n")
        ids = []
        for line in lines:
            if not line.strip():
                continue
            rec = json.loads(line)
            result = rec.get("result")
            db.execute(
                "INSERT INTO results VALUES (?, ?, ?, ?, ?) ON CONFLICT(id) "
                "DO UPDATE SET ok = excluded.ok, result = excluded.result, "
                "error = excluded.error, attempts = excluded.attempts",
                (rec["id"], int(rec["ok"]),
                 None if result is None else json.dumps(result),
                 rec.get("error"), rec.get("attempts")))
            ids.append(rec["id"])
        if ids:
            db.commit()  # safe now: say so, in the order they came
            out.write("".join(json.dumps({"ok": i}) + "\n" for i in ids))
            out.flush()


if __name__ == "__main__":
    main()
