"""A stream worker for pipelines of stages, named by its first argument.

It answers the payload with its own name added to "trail". The payload's
"do" object may ask this stage (by name) for one thing: "drop" (a filter
that keeps nothing), "perm" (a permanent failure), "fail_once" (fails the
first attempt, with STAGE_STATE naming a folder that remembers it),
"split:N" (emits N outputs, each with "part" and the port "pN % 2"),
"port:P" (one emitted output on port P), "perm_part:K" (a permanent
failure for the output of a splitter whose "part" is K, the others pass),
"sleep_part:K:S" (the part K takes S seconds more); with STAGE_GATE naming
a file, the part K of either waits until that file exists. STAGE_LOG names a file that gets
a line "NAME ID ATTEMPT PID" for every item; STAGE_SLEEP_NAME (NAME upper
case) is how many seconds the stage NAME takes over each item. A payload
that is the path of a file (as the dir source gives it) stands for the JSON
in that file.

STAGE_SLEEP and STAGE_CRASH are "NAME=VALUE,..." (a bare VALUE is for every
stage): the seconds this stage sleeps before each answer, and the chance
that it kills itself with SIGKILL in the middle of an attempt (a splitter
after half its emits), after the attempt's log line. Which attempts die is
decided by the CRC-32 of "NAME ID ATTEMPT", so a test can count them.
"""
import json
import os
import signal
import sys
import time
import zlib

name = sys.argv[1]
log_path = os.environ.get("STAGE_LOG")
state = os.environ.get("STAGE_STATE")
pause = float(os.environ.get(f"STAGE_SLEEP_{name.upper()}", "0"))


def setting(var):
    """This stage's value in the environment variable var, or 0."""
    for part in os.environ.get(var, "").split(","):
        key, eq, value = part.rpartition("=")
        if part and (not eq or key == name):
            return float(value)
    return 0.0


nap, crash = setting("STAGE_SLEEP"), setting("STAGE_CRASH")


def maybe_crash(item, attempt):
    if zlib.crc32(f"{name} {item} {attempt}".encode()) % 1000 < crash * 1000:
        os.kill(os.getpid(), signal.SIGKILL)


def say(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


for line in sys.stdin:
    msg = json.loads(line)
    item, attempt, payload = msg["id"], msg["attempt"], msg["payload"]
    if isinstance(payload, str) and os.path.isfile(payload):
        with open(payload) as f:
            payload = json.load(f)
    if log_path:
        with open(log_path, "a") as f:
            f.write(f"{name} {item} {attempt} {os.getpid()}\n")
    if pause or nap:
        time.sleep(pause or nap)
    action = (payload.get("do") or {}).get(name, "") \
        if isinstance(payload, dict) else ""
    out = dict(payload) if isinstance(payload, dict) else {"value": payload}
    out["trail"] = list(out.get("trail", [])) + [name]
    if action.startswith(("perm_part:", "sleep_part:")):
        what, k, *secs = action.split(":")
        hit = isinstance(payload, dict) and payload.get("part") == int(k)
        while hit and os.environ.get("STAGE_GATE") and \
                not os.path.exists(os.environ["STAGE_GATE"]):
            time.sleep(0.01)
        if hit and what == "sleep_part":
            time.sleep(float(secs[0]))
        action = "perm" if hit and what == "perm_part" else ""
    if action == "drop":
        say({"id": item, "ok": True, "drop": True})
    elif action == "perm":
        say({"id": item, "ok": False, "error": f"{name} refuses {item}",
             "retry": False})
    elif action == "fail_once":
        mark = os.path.join(state, f"{name}-{item}".replace("/", "_"))
        if not os.path.exists(mark):
            open(mark, "w").close()
            say({"id": item, "ok": False, "error": "first attempt fails"})
        else:
            say({"id": item, "ok": True, "result": out})
    elif action.startswith("split:"):
        n = int(action.split(":")[1])
        for i in range(n):
            if i == n // 2:
                maybe_crash(item, attempt)
            say({"id": item, "emit": dict(out, part=i), "port": f"p{i % 2}",
                 "key": f"k{i % 3}"})
        say({"id": item, "ok": True, "result": None})
    elif action.startswith("port:"):
        say({"id": item, "emit": out, "port": action.split(":")[1]})
        say({"id": item, "ok": True})
    else:
        maybe_crash(item, attempt)
        say({"id": item, "ok": True, "result": out})
