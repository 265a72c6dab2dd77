#!/usr/bin/env python3
"""An exec source for hopper: the lines of a JSON-lines file, one item each.

    hopper run -s 'exec:python3 sources/examples/file_source.py in.jsonl' -- WORKER

Each line is an item's payload; its id is its line number. With --state
FILE the ids that hopper acknowledged or declared dead are appended to FILE
and skipped when the program starts again, so a restart gives only what is
not finished (at least once). A nacked item is given again when it is due;
{"end": true} goes once every line has been acknowledged or declared dead.
Standard library only; the contract is sources/PROTOCOL.md.

Written for speed as much as for reading: items go out in batches, one
write each (whatever PYTHONUNBUFFERED says), their lines are formatted
without a JSON encoder (the id is a number, the payload a line of JSON
already), and when hopper offers it (HOPPER_FEATURES) the program asks for
acknowledgements in lists, {"ack": ["17", "18", ...]}, read with one split.
"""
import heapq
import json
import os
import select
import sys
import time
from itertools import islice

BATCH = 4096  # lines read and items written at a time, at most


def now_ms():
    return int(time.time() * 1000)


def main():
    args = sys.argv[1:]
    state = None
    if len(args) >= 2 and args[0] == "--state":
        state, args = args[1], args[2:]
    if len(args) != 1:
        sys.exit("usage: file_source.py [--state FILE] FILE.jsonl")
    done = set()
    if state and os.path.exists(state):
        with open(state) as f:
            done = {int(line) for line in f if line.strip().isdigit()}
    log = open(state, "a") if state else None

    lines = open(args[0], "rb", buffering=1 << 16)
    lineno = 0
    credit = 0
    outstanding = {}  # id (int) -> payload bytes, given and not finished
    due = []  # (when, id, payload): nacked, to be given again
    attempts = {}  # id -> attempts made, for items nacked before
    stopping = False  # hopper released an item: the run is ending
    ended = False
    pending = b""
    out = []  # lines to write, joined into one write

    if "ack_lists" in os.environ.get("HOPPER_FEATURES", "").split():
        out.append(b'{"hello":{"ack_lists":true}}\n')

    def finish(ids):
        """Forgets the items hopper acknowledged or declared dead."""
        pop = outstanding.pop
        for item_id in ids:
            pop(item_id, None)
        if attempts:
            for item_id in ids:
                attempts.pop(item_id, None)
        if log:
            log.writelines("%d\n" % i for i in ids)

    while True:
        # Give what the credit allows: what is due again, then new lines.
        if due and credit > 0 and not stopping:
            t = now_ms()
            while due and credit > 0 and due[0][0] <= t:
                _, item_id, payload = heapq.heappop(due)
                out.append(b'{"id":"%d","payload":%s,"attempts":%d}\n'
                           % (item_id, payload, attempts.get(item_id, 0)))
                outstanding[item_id] = payload
                credit -= 1
        while lines and credit > 0 and not stopping:
            chunk = [raw.strip()
                     for raw in islice(lines, min(credit, BATCH))]
            if not chunk:
                lines.close()
                lines = None
                break
            first = lineno + 1
            lineno += len(chunk)
            if b"" in chunk or done:
                # Blank lines, or lines done in an earlier run: skipped,
                # their numbers kept.
                given = [(i, raw) for i, raw in enumerate(chunk, first)
                         if raw and i not in done]
            else:
                given = list(zip(range(first, lineno + 1), chunk))
            outstanding.update(given)
            out.extend([b'{"id":"%d","payload":%s}\n' % g for g in given])
            credit -= len(given)
        if not lines and not outstanding and not due and not ended \
                and not stopping:
            out.append(b'{"end":true}\n')
            ended = True
        if out:
            data = b"".join(out)
            out.clear()
            view = memoryview(data)
            while view:
                view = view[os.write(1, view):]

        wait = None
        if due and credit > 0:
            wait = max(0, due[0][0] - now_ms()) / 1000
        if log:
            log.flush()
        ready, _, _ = select.select([0], [], [], wait)
        if not ready:
            continue
        chunk = os.read(0, 1 << 16)  # under malloc's mmap threshold
        if not chunk:  # stdin closed: the run is over
            return
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            # The common lines, read without a JSON parser: ids here are
            # line numbers, with nothing to escape.
            if line.startswith(b'{"ack":["') and line.endswith(b'"]}'):
                finish([int(i) for i in line[9:-3].split(b'","')])
                continue
            if line.startswith(b'{"ack":"') and line.endswith(b'"}') \
                    and b"\\" not in line:
                finish((int(line[8:-2]),))
                continue
            if not line.strip():
                continue
            msg = json.loads(line)
            if "credit" in msg:
                credit += msg["credit"]
            elif "ack" in msg or "dead" in msg:
                ids = msg.get("ack", msg.get("dead"))
                ids = ids if isinstance(ids, list) else [ids]
                finish([int(i) for i in ids if str(i).isdigit()])
            elif "nack" in msg:
                item_id = int(msg["nack"]) if msg["nack"].isdigit() else 0
                payload = outstanding.pop(item_id, None)
                if payload is not None:
                    attempts[item_id] = msg["attempts"]
                    heapq.heappush(due, (msg["retry_at"], item_id, payload))
            elif "release" in msg:
                # The run stops: give nothing more; not done, so the next
                # run gives it again.
                if msg["release"].isdigit():
                    outstanding.pop(int(msg["release"]), None)
                stopping = True


if __name__ == "__main__":
    main()
