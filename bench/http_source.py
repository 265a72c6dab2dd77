"""The http source benchmark: hopper draining a source container (the
reference server of sources/http/http_items.py) against two peers
measured in the same run on the same items and worker:

- a consumer as one writes it by hand in Python with the standard library
  and a thread pool as wide as hopper's requests (list, GET, hand the item
  to a worker process, DELETE), the peer that hopper replaces;
- hopper's jsonl source over the same payloads, which shows what the HTTP
  round trips cost against no server at all.

    make build/hopper build/bench/echo_worker
    python3 bench/http_source.py [ITEMS] [ROUNDS]

Each round refills the folder; the figures are the medians of the rounds.
The server is Python's ThreadingHTTPServer, and it, not the consumer, is
the ceiling of both: their rates come out alike, so the figure that tells
them apart is the CPU each consumer spends per item (its own and its
workers', the server's not counted).
"""
import concurrent.futures
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
BUILD = os.environ.get("HOPPER_BUILD", os.path.join(ROOT, "build"))
HOPPER = os.environ.get("HOPPER", os.path.join(BUILD, "hopper"))
WORKER = os.path.join(BUILD, "bench", "echo_worker")

WORKERS = 4
REQUESTS = 8  # hopper's default concurrency


def fill(folder, n):
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    for i in range(n):
        with open(os.path.join(folder, f"item{i:06d}.json"), "w") as f:
            json.dump({"n": i, "text": "the quick brown fox"}, f)


def serve(folder):
    """The server in a process of its own, so that it shares no
    interpreter lock with the hand-written client."""
    p = subprocess.Popen([sys.executable, os.path.join(
        ROOT, "sources", "http", "http_items.py"), folder, "--port", "0"],
        stdout=subprocess.PIPE, text=True)
    return p, p.stdout.readline().split(" on ", 1)[1].strip()


def left(folder):
    return sum(1 for name in os.listdir(folder) if name.endswith(".json"))


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_hopper(url, out):
    """Returns (seconds, CPU seconds of hopper and its workers)."""
    t0, c0 = time.monotonic(), children_cpu()
    subprocess.run([HOPPER, "run", "-s", url, "-o", f"jsonl:{out}",
                    "-j", str(WORKERS), "--log-level", "warn", "--", WORKER],
                   check=True)
    return time.monotonic() - t0, children_cpu() - c0


def run_jsonl(path, out):
    t0, c0 = time.monotonic(), children_cpu()
    subprocess.run([HOPPER, "run", "-s", f"jsonl:{path}", "-o",
                    f"jsonl:{out}", "-j", str(WORKERS), "--log-level", "warn",
                    "--", WORKER], check=True)
    return time.monotonic() - t0, children_cpu() - c0


class Worker:
    """One echo worker process, used by one thread at a time."""

    def __init__(self):
        self.p = subprocess.Popen([WORKER], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)

    def handle(self, item, payload):
        self.p.stdin.write(json.dumps({"id": item, "attempt": 1,
                                       "payload": payload},
                                      separators=(",", ":")) + "\n")
        self.p.stdin.flush()
        return self.p.stdout.readline()

    def close(self):
        self.p.stdin.close()
        self.p.wait()


def run_by_hand(url, out):
    """List, then GET, work and DELETE each id on a pool of threads; list
    again until the list is empty."""
    pool = [Worker() for _ in range(WORKERS)]
    free = list(pool)
    lock = threading.Condition()
    results = open(out, "w")

    def one(item):
        with urllib.request.urlopen(f"{url}/{item}") as r:
            payload = json.load(r)
        with lock:
            while not free:
                lock.wait()
            w = free.pop()
        line = w.handle(item, payload)
        with lock:
            free.append(w)
            results.write(line)
            results.flush()
            os.fsync(results.fileno())
            lock.notify()
        req = urllib.request.Request(f"{url}/{item}", method="DELETE")
        urllib.request.urlopen(req).close()

    t0, c0, p0 = time.monotonic(), children_cpu(), time.process_time()
    with concurrent.futures.ThreadPoolExecutor(REQUESTS) as ex:
        while True:
            with urllib.request.urlopen(url) as r:
                ids = json.load(r)["items"]
            if not ids:
                break
            list(ex.map(one, ids))
    took = time.monotonic() - t0
    results.close()
    for w in pool:
        w.close()
    return took, time.process_time() - p0 + children_cpu() - c0


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    for need in (HOPPER, WORKER):
        if not os.path.exists(need):
            sys.exit(f"{need} is missing: make build/hopper "
                     "build/bench/echo_worker")
    tmp = tempfile.mkdtemp(prefix="hopper-http-bench-")
    folder = os.path.join(tmp, "q")
    payloads = os.path.join(tmp, "items.jsonl")
    with open(payloads, "w") as f:
        for i in range(n):
            f.write(json.dumps({"n": i, "text": "the quick brown fox"}) + "\n")
    fill(folder, 0)
    server, url = serve(folder)
    times = {"hopper http": [], "by hand": [], "hopper jsonl": []}
    try:
        for _ in range(rounds):
            for name in ("hopper http", "by hand"):
                fill(folder, n)
                run = run_hopper if name == "hopper http" else run_by_hand
                times[name].append(run(url, os.path.join(tmp, "o")))
                assert left(folder) == 0, f"{name} left items behind"
            times["hopper jsonl"].append(
                run_jsonl(payloads, os.path.join(tmp, "o")))
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    rate = {k: n / statistics.median(t for t, _ in v)
            for k, v in times.items()}
    cpu = {k: 1000 * statistics.median(c for _, c in v) / n
           for k, v in times.items()}
    print(f"http source, {n} items, {WORKERS} workers, median of {rounds}:")
    for k in rate:
        print(f"  {k:13s} {rate[k]:9.0f} items/s  {cpu[k]:6.3f} CPU ms/item "
              "(consumer and workers)")
    print("  hopper http / by hand, items/s:   "
          f"{rate['hopper http'] / rate['by hand']:.2f}")
    print("  by hand / hopper http, CPU/item:  "
          f"{cpu['by hand'] / cpu['hopper http']:.2f}")
    print("  hopper http / hopper jsonl, items/s: "
          f"{rate['hopper http'] / rate['hopper jsonl']:.3f}")


if __name__ == "__main__":
    main()
