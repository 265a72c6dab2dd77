#!/usr/bin/env python3
"""A sink program for the exec sink's tests (sources/PROTOCOL.md).

    exec_sink.py DIR

Appends each record it takes to DIR/records.jsonl, then answers
{"ok": id}. Writes its pid to DIR/pid. The environment bends it:
  RETRY_ONCE=ID,ID   the first time a result for one of them comes, it is
                     refused with "retry": true (DIR/refused notes it)
  REFUSE=ID,ID       results for them are refused with "retry": false
                     (a dead record for them is taken)
  KILL_AFTER=K       the first incarnation kills itself (SIGKILL) after
                     taking K records, before answering them
  GARBAGE_AT=K       the first incarnation answers its K-th record with a
                     line that is not an answer
"""
import json
import os
import signal
import sys


def main():
    d = sys.argv[1]
    retry_once = set(filter(None, os.environ.get("RETRY_ONCE", "").split(",")))
    refuse = set(filter(None, os.environ.get("REFUSE", "").split(",")))
    kill_after = int(os.environ.get("KILL_AFTER", "0"))
    garbage_at = int(os.environ.get("GARBAGE_AT", "0"))
    first = os.environ.get("HOPPER_INCARNATION") == "1"
    with open(os.path.join(d, "pid"), "w") as f:
        f.write(str(os.getpid()))
    refused_path = os.path.join(d, "refused")
    refused = set()
    if os.path.exists(refused_path):
        with open(refused_path) as f:
            refused = {x.strip() for x in f}
    out = open(os.path.join(d, "records.jsonl"), "a")
    taken = 0
    for line in sys.stdin:
        rec = json.loads(line)
        rid = rec["id"]
        taken += 1
        if kill_after and first and taken == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
        if garbage_at and first and taken == garbage_at:
            sys.stdout.write("all good here\n")
            sys.stdout.flush()
            continue
        if rec["ok"] and rid in refuse:
            answer = {"fail": rid, "retry": False, "error": "refused for good"}
        elif rec["ok"] and rid in retry_once and rid not in refused:
            refused.add(rid)
            with open(refused_path, "a") as f:
                f.write(rid + "\n")
            answer = {"fail": rid, "retry": True, "error": "not now"}
        else:
            out.write(line if line.endswith("\n") else line + "\n")
            out.flush()
            answer = {"ok": rid}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
