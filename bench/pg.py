"""The PostgreSQL queue benchmark: hopper's postgres source against pgbench
running the very statements the source runs (claim a batch, mark it done),
on the same server in the same run, and the time from an INSERT to a worker
holding the row, with NOTIFY and with polling alone."""
import ctypes
import ctypes.util
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
from harness.postgres import PostgresServer  # noqa: E402

PY = sys.executable
LEDGER = os.path.join(HERE, "..", "tests", "integration", "workers",
                      "ledger.py")

# The source's statements (sources/postgres/postgres.c), for pgbench: the
# claim hands its rows to the acknowledgement as the JSON rows the source
# builds.
CLAIM = """WITH r AS (SELECT id FROM q WHERE state = 'ready' AND run_at <= now()
 ORDER BY run_at, id LIMIT {batch} FOR UPDATE SKIP LOCKED),
e AS (SELECT id FROM q WHERE state = 'running' AND lease_until < now()
 ORDER BY lease_until LIMIT {batch} FOR UPDATE SKIP LOCKED),
c AS (SELECT id FROM e UNION ALL SELECT id FROM r LIMIT {batch}),
u AS (UPDATE q SET state = 'running', attempts = q.attempts + 1,
 lease_until = now() + make_interval(secs => 300), holder = 'pgbench:1',
 updated_at = now() FROM c WHERE q.id = c.id
 RETURNING q.id, coalesce(q.key, q.id::text), q.payload::text, q.attempts)
SELECT coalesce(jsonb_agg(jsonb_build_object('id', id, 'attempts', attempts,
 'result', jsonb_build_object('ok', 1))), '[]') AS rows FROM u
\\gset
UPDATE q SET state = 'done', lease_until = NULL, holder = NULL,
 updated_at = now() FROM jsonb_to_recordset(:rows::jsonb)
 AS u(id bigint, attempts int, result jsonb) WHERE q.id = u.id
 AND q.attempts = u.attempts AND q.holder = 'pgbench:1'
 AND q.state = 'running';
"""


class Libpq:
    """Just enough of libpq, through ctypes, to time an INSERT exactly."""

    def __init__(self, url):
        self.lib = ctypes.CDLL(ctypes.util.find_library("pq") or "libpq.so.5")
        self.lib.PQconnectdb.restype = ctypes.c_void_p
        self.lib.PQexec.restype = ctypes.c_void_p
        self.lib.PQexec.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        self.lib.PQclear.argtypes = [ctypes.c_void_p]
        self.lib.PQfinish.argtypes = [ctypes.c_void_p]
        self.lib.PQstatus.argtypes = [ctypes.c_void_p]
        self.conn = self.lib.PQconnectdb(url.encode())
        assert self.lib.PQstatus(self.conn) == 0, "cannot connect"

    def execute(self, sql):
        self.lib.PQclear(self.lib.PQexec(self.conn, sql.encode()))

    def close(self):
        self.lib.PQfinish(self.conn)


def fill(pg, n):
    pg.psql("TRUNCATE q; INSERT INTO q (payload) SELECT jsonb_build_object("
            f"'n', g) FROM generate_series(1, {n}) g; VACUUM ANALYZE q",
            url=pg.url)


def pgbench_rate(pg, hopper_build, batch, transactions, clients=1):
    script = os.path.join(tempfile.gettempdir(), f"hopper-claim-{batch}.sql")
    with open(script, "w") as f:
        f.write(CLAIM.format(batch=batch))
    fill(pg, batch * transactions)
    env = dict(os.environ, PGPASSWORD="hopper-secret")
    p = subprocess.run([os.path.join(pg.bindir, "pgbench"), "-n", "-M",
                        "prepared", "-c", str(clients), "-t",
                        str(transactions // clients), "-f",
                        script, "-h", pg.host, "-p", str(pg.port), "-U",
                        "hopper", "hopper"],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr + p.stdout
    done = int(pg.psql("SELECT count(*) FROM q WHERE state = 'done'"))
    assert done == batch * (transactions // clients) * clients, p.stdout
    tps = float(re.search(r"tps = ([\d.]+)", p.stdout)[1])
    return tps * batch


def hopper_rate(pg, hopper, echo, batch, n):
    fill(pg, n)
    p = subprocess.run([hopper, "run", "-s", pg.url, "-S", "table=q",
                        "-S", f"batch={batch}", "-o", "jsonl:/dev/null",
                        "-j", "2", "--prefetch", "64", "--", echo],
                       capture_output=True, text=True)
    m = re.search(r"finished: (\d+) done.*\(([\d.]+) items/s\)", p.stderr)
    assert p.returncode == 0 and m and int(m[1]) == n, p.stderr
    return float(m[2])


def latency(pg, hopper, notify, rounds):
    """Seconds from an INSERT to the worker holding the row, per round."""
    tmp = tempfile.mkdtemp(prefix="hopper-bench-pg.")
    ledger = os.path.join(tmp, "ledger")
    pg.psql("TRUNCATE q", url=pg.url)
    env = dict(os.environ, LEDGER=ledger)
    env.pop("PYTHONUNBUFFERED", None)
    p = subprocess.Popen([hopper, "run", "-s", pg.url, "-S", "table=q",
                          "-S", f"notify={'true' if notify else 'false'}",
                          "-o", "jsonl:/dev/null", "-j", "1", "--watch",
                          "--", PY, LEDGER],
                         stderr=subprocess.DEVNULL, env=env)
    db = Libpq(pg.url)
    out = []
    try:
        time.sleep(1.0)  # started and idle
        for i in range(rounds):
            t0 = time.monotonic_ns()
            db.execute(f"INSERT INTO q (payload) VALUES ('{{\"n\": {i}}}')")
            deadline = time.monotonic() + 10
            while True:
                lines = (open(ledger).read().splitlines()
                         if os.path.exists(ledger) else [])
                if len(lines) > i:
                    break
                assert time.monotonic() < deadline, "no item arrived"
                time.sleep(0.001)
            got = int(lines[i].split()[2])
            out.append((got - t0) / 1e9)
            time.sleep(0.3 + (i % 3) * 0.37)  # idle again, at odd phases
    finally:
        db.close()
        p.send_signal(2)
        p.wait(timeout=30)
        for name in os.listdir(tmp):
            os.unlink(os.path.join(tmp, name))
        os.rmdir(tmp)
    return out


def run(hopper, hopper_build, rounds):
    echo = os.path.join(hopper_build, "bench", "echo_worker")
    with PostgresServer() as pg:
        subprocess.run([hopper, "pg", "init", pg.url, "--table", "q"],
                       check=True, capture_output=True)
        one = pgbench_rate(pg, hopper_build, 1, 3000)
        print(f"postgres, claim+done 1 row per statement (pgbench) "
              f"{one:>9,.0f} rows/s")
        for batch in (64,):
            n = 50_000
            hs, cs = [], []
            for _ in range(rounds):
                cs.append(pgbench_rate(pg, hopper_build, batch,
                                       n // batch))
                hs.append(hopper_rate(pg, hopper, echo, batch, n))
            h, c = statistics.median(hs), statistics.median(cs)
            print(f"postgres, batch {batch:<3}  hopper {h:>9,.0f} items/s   "
                  f"ceiling (pgbench, same statements) {c:>9,.0f}   "
                  f"ratio {h / c:.2f}  (goal >= 0.70)")
        two = pgbench_rate(pg, hopper_build, 64, 50_000 // 64, clients=2)
        print(f"postgres, batch 64 on two connections (pgbench) {two:>9,.0f} "
              f"rows/s: the server's room beyond one connection")
        for notify in (True, False):
            lat = latency(pg, hopper, notify, 2 * rounds + 1)
            print(f"postgres, idle to first item, "
                  f"{'NOTIFY ' if notify else 'polling'}: median "
                  f"{statistics.median(lat) * 1000:6.1f} ms, max "
                  f"{max(lat) * 1000:6.1f} ms"
                  + ("  (goal < 50 ms)" if notify else "  (poll 2 s)"))
