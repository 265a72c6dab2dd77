#!/usr/bin/env python3
"""An exec source for hopper: the items of a Redis list.

    hopper run -s 'exec:python3 sources/examples/redis_source.py --key jobs' -- WORKER

Each element of the list KEY is an item's payload (JSON text; anything else
is given as a JSON string); its id is the element's "id" field when it is an
object that has one, else a hash of the element. The reliable-queue
pattern: an element given to hopper moves to KEY:processing (LMOVE), an ack
removes it there, a dead letter moves it to KEY:dead with hopper's record, a
nack parks it in the sorted set KEY:delayed until it is due, a release puts
it back on KEY. At start, what a stopped run left in KEY:processing goes
back to KEY: one consumer per list. {"depth": N} says how long the list is;
with --drain, {"end": true} goes once the list is empty and nothing is out.

No client library: the few Redis commands it needs are spoken in RESP by
the small client below. Contract: sources/PROTOCOL.md.
"""
import argparse
import hashlib
import json
import os
import select
import socket
import sys
import time


class Redis:
    """Just enough of a RESP2 client: one connection, one command at a
    time."""

    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port))
        self.buf = b""

    def __call__(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))
        return self._reply()

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self.buf += self.sock.recv(65536)
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise RuntimeError("unexpected reply %r" % line)


def item_of(raw):
    """The item line for one list element: its id and payload."""
    try:
        payload = json.loads(raw)
    except ValueError:
        payload = raw.decode("utf-8", "replace")
    item_id = None
    if isinstance(payload, dict) and isinstance(payload.get("id"),
                                                (str, int)):
        item_id = str(payload["id"])
    if not item_id:
        item_id = hashlib.sha1(raw).hexdigest()[:16]
    return item_id, payload


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=6379)
    ap.add_argument("--key", required=True)
    ap.add_argument("--drain", action="store_true",
                    help="end once the list is empty and nothing is out")
    a = ap.parse_args()
    r = Redis(a.host, a.port)
    key, processing = a.key, a.key + ":processing"
    delayed, dead = a.key + ":delayed", a.key + ":dead"

    # What a stopped run had out goes back, to be given again.
    while r("LMOVE", processing, key, "RIGHT", "RIGHT") is not None:
        pass

    out = sys.stdout
    credit = 0
    given = {}  # id -> raw element, out with hopper
    attempts = {}  # id -> attempts made, from nacks
    pending = b""
    ended = False
    stopping = False  # hopper released an item: the run is ending
    last_depth = 0.0
    while True:
        now = time.time()
        for raw in r("ZRANGEBYSCORE", delayed, "-inf", int(now * 1000)):
            if r("ZREM", delayed, raw):
                r("RPUSH", key, raw)
        while credit > 0 and not stopping:
            raw = r("LMOVE", key, processing, "LEFT", "RIGHT")
            if raw is None:
                break
            item_id, payload = item_of(raw)
            n = 1
            while item_id in given:  # the same element twice
                n += 1
                item_id = "%s#%d" % (item_of(raw)[0], n)
            given[item_id] = raw
            line = {"id": item_id, "payload": payload}
            if item_id in attempts:
                line["attempts"] = attempts[item_id]
            out.write(json.dumps(line) + "\n")
            credit -= 1
        if now - last_depth >= 0.5:
            out.write(json.dumps({"depth": r("LLEN", key)}) + "\n")
            last_depth = now
        if a.drain and not given and not ended and not r("LLEN", key) \
                and not r("ZCARD", delayed):
            out.write('{"end":true}\n')
            ended = True
        out.flush()

        # Wait for hopper, or look at the list again soon.
        ready, _, _ = select.select([0], [], [], 0.1)
        if not ready:
            continue
        chunk = os.read(0, 1 << 16)
        if not chunk:
            return  # stdin closed: the run is over
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if not line.strip():
                continue
            msg = json.loads(line)
            if "credit" in msg:
                credit += msg["credit"]
            elif "ack" in msg:
                raw = given.pop(msg["ack"], None)
                attempts.pop(msg["ack"], None)
                if raw is not None:
                    r("LREM", processing, 1, raw)
            elif "dead" in msg:
                raw = given.pop(msg["dead"], None)
                attempts.pop(msg["dead"], None)
                if raw is not None:
                    r("RPUSH", dead, json.dumps(msg["record"]))
                    r("LREM", processing, 1, raw)
            elif "nack" in msg:
                raw = given.pop(msg["nack"], None)
                if raw is not None:
                    attempts[msg["nack"]] = msg["attempts"]
                    r("ZADD", delayed, msg["retry_at"], raw)
                    r("LREM", processing, 1, raw)
            elif "release" in msg:
                # The run stops: back to the list, first in line; give
                # nothing more.
                raw = given.pop(msg["release"], None)
                stopping = True
                if raw is not None:
                    r("LPUSH", key, raw)
                    r("LREM", processing, 1, raw)


if __name__ == "__main__":
    main()
