"""A stream worker for pipelines of stages, named by its first argument.

It answers the payload with its own name added to "trail". The payload's
"do" object may ask this stage (by name) for one thing: "drop" (a filter
that keeps nothing), "perm" (a permanent failure), "fail_once" (fails the
first attempt, with STAGE_STATE naming a folder that remembers it),
"split:N" (emits N outputs, each with "part" and the port "pN % 2"),
"port:P" (one emitted output on port P). STAGE_LOG names a file that gets
a line "NAME ID ATTEMPT PID" for every item; STAGE_SLEEP_NAME (NAME upper
case) is how many seconds the stage NAME takes over each item.
"""
import json
import os
import sys
import time

name = sys.argv[1]
log_path = os.environ.get("STAGE_LOG")
state = os.environ.get("STAGE_STATE")
pause = float(os.environ.get(f"STAGE_SLEEP_{name.upper()}", "0"))


def say(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


for line in sys.stdin:
    msg = json.loads(line)
    item, attempt, payload = msg["id"], msg["attempt"], msg["payload"]
    if log_path:
        with open(log_path, "a") as f:
            f.write(f"{name} {item} {attempt} {os.getpid()}\n")
    if pause:
        time.sleep(pause)
    action = (payload.get("do") or {}).get(name, "") \
        if isinstance(payload, dict) else ""
    out = dict(payload) if isinstance(payload, dict) else {"value": payload}
    out["trail"] = list(out.get("trail", [])) + [name]
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
        for i in range(int(action.split(":")[1])):
            say({"id": item, "emit": dict(out, part=i), "port": f"p{i % 2}",
                 "key": f"k{i % 3}"})
        say({"id": item, "ok": True, "result": None})
    elif action.startswith("port:"):
        say({"id": item, "emit": out, "port": action.split(":")[1]})
        say({"id": item, "ok": True})
    else:
        say({"id": item, "ok": True, "result": out})
