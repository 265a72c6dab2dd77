#!/usr/bin/env python3
"""An exec source for hopper: the lines of a JSON-lines file, one item each.

    hopper run -s 'exec:python3 sources/examples/file_source.py in.jsonl' -- WORKER

Each line is an item's payload; its id is its line number. With --state
FILE the ids that hopper acknowledged or declared dead are appended to FILE
and skipped when the program starts again, so a restart gives only what is
not finished (at least once). A nacked item is given again when it is due;
{"end": true} goes once every line has been acknowledged or declared dead.
Standard library only; the contract is sources/PROTOCOL.md.
"""
import heapq
import json
import os
import select
import sys
import time


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
            done = {line.strip() for line in f if line.strip()}
    log = open(state, "a") if state else None

    lines = open(args[0], "rb")
    lineno = 0
    credit = 0
    outstanding = {}  # id -> payload bytes, given and not finished
    due = []  # (when, id, payload): nacked, to be given again
    stopping = False  # hopper released an item: the run is ending
    ended = False
    out = sys.stdout.buffer
    pending = b""

    attempts = {}  # id -> attempts made, for items nacked before

    def give(item_id, payload):
        made = attempts.get(item_id) if attempts else None
        extra = b',"attempts":%d' % made if made else b""
        out.write(b'{"id":"%s","payload":%s%s}\n'
                  % (item_id.encode(), payload, extra))
        outstanding[item_id] = payload

    while True:
        # Give what the credit allows: what is due again, then new lines.
        t = now_ms()
        while credit > 0 and not stopping:
            if due and due[0][0] <= t:
                _, item_id, payload = heapq.heappop(due)
                give(item_id, payload)
            elif lines:
                raw = lines.readline()
                if not raw:
                    lines.close()
                    lines = None
                    continue
                lineno += 1
                raw = raw.strip()
                item_id = str(lineno)
                if not raw or item_id in done:
                    continue
                give(item_id, raw)
            else:
                break
            credit -= 1
        if not lines and not outstanding and not due and not ended \
                and not stopping:
            out.write(b'{"end":true}\n')
            ended = True
        out.flush()

        wait = None
        if due and credit > 0:
            wait = max(0, due[0][0] - now_ms()) / 1000
        if log:
            log.flush()
        ready, _, _ = select.select([0], [], [], wait)
        if not ready:
            continue
        chunk = os.read(0, 1 << 20)
        if not chunk:  # stdin closed: the run is over
            return
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            if line.startswith(b'{"ack":"') and line.endswith(b'"}') \
                    and b"\\" not in line:
                # The common line, read without a JSON parser: ids here
                # are line numbers, with nothing to escape.
                item_id = line[8:-2].decode()
                outstanding.pop(item_id, None)
                if attempts:
                    attempts.pop(item_id, None)
                if log:
                    log.write(item_id + "\n")
                continue
            if not line.strip():
                continue
            msg = json.loads(line)
            if "credit" in msg:
                credit += msg["credit"]
            elif "ack" in msg or "dead" in msg:
                item_id = msg.get("ack", msg.get("dead"))
                outstanding.pop(item_id, None)
                attempts.pop(item_id, None)
                if log:
                    log.write(item_id + "\n")
            elif "nack" in msg:
                payload = outstanding.pop(msg["nack"], None)
                if payload is not None:
                    attempts[msg["nack"]] = msg["attempts"]
                    heapq.heappush(due, (msg["retry_at"], msg["nack"],
                                         payload))
            elif "release" in msg:
                # The run stops: give nothing more; not done, so the next
                # run gives it again.
                outstanding.pop(msg["release"], None)
                stopping = True


if __name__ == "__main__":
    main()
