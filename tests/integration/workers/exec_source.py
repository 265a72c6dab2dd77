#!/usr/bin/env python3
"""A source program for the exec source's tests (sources/PROTOCOL.md).

    exec_source.py COUNT DIR

Gives items "1".."COUNT" ({"n": i}), keeps to its credit, and records in
DIR: acks.log (one "ack ID", "nack ID", "dead ID" or "release ID" line per
message hopper sent), done (the ids acknowledged or dead, read again at
start so that a restart gives only what is not finished), pid (its pid).
Once everything is finished it sends {"end": true}. The environment bends
it:
  KILL_AFTER=K   the first incarnation kills itself (SIGKILL) after giving
                 K items, before it sees their acknowledgements
  FLOOD=BYTES    ignores its credit: writes every item at once, each with a
                 payload of BYTES bytes, and records in DIR/flood the most
                 items it had written beyond the credit it had seen
  BAD=1          writes lines that break the contract among its items
  FAIL=ID,ID     those items' payloads ask the fake worker to fail
  SLOW=SECS      every payload asks the fake worker to sleep that long
  ACK_LISTS=1    says {"hello": {"ack_lists": true}} first when hopper
                 offers it in HOPPER_FEATURES, and takes {"ack": [ids]}
Each ack line is also counted in DIR/ack_forms: "one" for {"ack": "ID"},
"list N" for a list of N ids, so that a test sees which form came.
"""
import json
import os
import select
import signal
import sys
import time


def main():
    count, d = int(sys.argv[1]), sys.argv[2]
    kill_after = int(os.environ.get("KILL_AFTER", "0"))
    first = os.environ.get("HOPPER_INCARNATION") == "1"
    flood = int(os.environ.get("FLOOD", "0"))
    bad = os.environ.get("BAD") == "1"
    fail = set(filter(None, os.environ.get("FAIL", "").split(",")))
    slow = float(os.environ.get("SLOW", "0"))
    ack_lists = os.environ.get("ACK_LISTS") == "1" and "ack_lists" in \
        os.environ.get("HOPPER_FEATURES", "").split()
    forms = open(os.path.join(d, "ack_forms"), "a")
    attempts = {}
    stopping = []
    with open(os.path.join(d, "pid"), "w") as f:
        f.write(str(os.getpid()))
    done = set()
    if os.path.exists(os.path.join(d, "done")):
        with open(os.path.join(d, "done")) as f:
            done = {x.strip() for x in f if x.strip()}
    log = open(os.path.join(d, "acks.log"), "a")
    donef = open(os.path.join(d, "done"), "a")
    todo = [str(i) for i in range(1, count + 1) if str(i) not in done]
    todo.reverse()
    out = os.fdopen(1, "wb", buffering=0) if flood else sys.stdout.buffer
    credit = 0
    credit_seen = 0
    outstanding = set()
    retry = []
    given = 0
    ended = False
    pending = b""
    most_over = 0

    def read_stdin(block):
        nonlocal pending, credit, credit_seen
        r, _, _ = select.select([0], [], [], None if block else 0)
        if not r:
            return True
        chunk = os.read(0, 1 << 16)
        if not chunk:
            return False
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            msg = json.loads(line)
            if "credit" in msg:
                credit += msg["credit"]
                credit_seen += msg["credit"]
                continue
            kind = next(iter(msg))
            if kind == "ack":
                ids = msg["ack"]
                if isinstance(ids, list):
                    forms.write("list %d\n" % len(ids))
                else:
                    forms.write("one\n")
                    ids = [ids]
                forms.flush()
                for i in ids:
                    log.write("ack %s\n" % i)
                    outstanding.discard(i)
                    donef.write(i + "\n")
                log.flush()
                donef.flush()
                continue
            log.write("%s %s\n" % (kind, msg[kind]))
            log.flush()
            outstanding.discard(msg[kind])
            if kind == "dead":
                donef.write(msg[kind] + "\n")
                donef.flush()
            elif kind == "nack":
                attempts[msg[kind]] = msg["attempts"]
                retry.append(msg[kind])
            else:  # release: the run stops; the next one gives it again
                stopping.append(msg[kind])
        return True

    def give(item_id):
        nonlocal given
        payload = {"n": int(item_id)}
        if flood:
            payload["pad"] = "x" * flood
        if item_id in fail:
            payload["do"] = "fail"
        if slow:
            payload.update({"do": "sleep", "secs": slow})
        item = {"id": item_id, "payload": payload}
        if item_id in attempts:
            item["attempts"] = attempts[item_id]
        line = json.dumps(item) + "\n"
        if bad and item_id in ("3", "6"):
            out.write(b"this is not json\n")
            out.write(b'{"payload": {"n": 0}}\n')
        out.write(line.encode())
        outstanding.add(item_id)
        given += 1
        if kill_after and first and given == kill_after:
            out.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    if ack_lists:
        out.write(b'{"hello":{"ack_lists":true}}\n')
    if flood:
        # Everything at once, whatever the credit; between writes, what
        # hopper sent is read, so the credit seen is up to date.
        while todo:
            give(todo.pop())
            while True:  # drain what is there without waiting
                r, _, _ = select.select([0], [], [], 0)
                if not r or not read_stdin(False):
                    break
            most_over = max(most_over, given - credit_seen)
            with open(os.path.join(d, "flood"), "w") as f:
                f.write(str(most_over))
    while True:
        while credit > 0 and (todo or retry) and not stopping:
            give(retry.pop() if retry else todo.pop())
            credit -= 1
        if not todo and not retry and not outstanding and not ended \
                and not stopping:
            out.write(b'{"end":true}\n')
            ended = True
        out.flush()
        if not read_stdin(True):
            return


if __name__ == "__main__":
    main()
