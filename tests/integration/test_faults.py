"""Fault tests that count: a worker that crashes on 5% of items and hangs on
another 2% still leaves every item done or dead, exactly once."""
import re
import time

from conftest import FAKE, by_id, clean_env, hopper, read_jsonl, write_jsonl


def test_2000_items_through_a_crashing_and_hanging_worker(tmp):
    n = 2000
    src = write_jsonl(tmp / "in.jsonl", [{"n": i} for i in range(n)])
    t0 = time.time()
    code, out, err = hopper("run", "-s", f"jsonl:{src}", "-j", "8",
                            "--timeout", "1", "--kill-timeout", "0.3",
                            "--attempts", "4", "--backoff", "0.05",
                            "--", *FAKE, timeout=300,
                            env=clean_env(FAKE_CRASH=0.05, FAKE_HANG=0.02))
    assert code in (0, 3), err[-3000:]
    res = by_id(read_jsonl(out))  # fails on any id finished twice
    assert sorted(res, key=int) == [str(i + 1) for i in range(n)]
    done = [r for r in res.values() if r["ok"]]
    dead = [r for r in res.values() if not r["ok"]]
    assert len(done) + len(dead) == n
    for r in done:
        assert r["result"]["echo"] == {"n": int(r["id"]) - 1}
    for r in dead:
        assert r["attempts"] == 4
    m = re.search(r"finished: (\d+) done, (\d+) dead, (\d+) retried", err)
    assert m and int(m[1]) == len(done) and int(m[2]) == len(dead)
    # The faults really happened, and were retried.
    assert int(m[3]) >= 60
    assert "timed out" in err and "exited with status" in err
    print(f"{len(done)} done, {len(dead)} dead, {m[3]} retries "
          f"in {time.time() - t0:.1f} s")
