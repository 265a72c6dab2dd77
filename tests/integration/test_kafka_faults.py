"""Kafka fault test, counted: three coordinators in one group over a
six-partition topic, one killed with SIGKILL in the middle."""
import collections
import json
import signal
import time

from conftest import (FAKE, KAFKA_QUICK, PY, WORKERS, clean_env, hopper,
                      read_jsonl, start, stderr_of, wait_for, write_jsonl)


LEDGER = [PY, str(WORKERS / "ledger.py")]
def test_three_coordinators_one_killed(kafka, tmp):
    n, src, res = 50000, "many-in", "many-out"
    kafka.create_topic(src, partitions=6)
    kafka.create_topic(res, partitions=3)
    kafka.create_topic(f"{src}.dead", partitions=1)
    ledger = tmp / "ledger"
    env = clean_env(LEDGER=ledger)
    procs = [start("run", "-s", f"kafka://{kafka.bootstrap}/{src}",
                   "-S", "group=many", "-S", f"config={KAFKA_QUICK}",
                   "-o", f"kafka://{kafka.bootstrap}/{res}", "-j", "2",
                   "--prefetch", "8", "--watch", "--", *LEDGER, env=env,
                   cwd=tmp)
             for _ in range(3)]
    victim = procs[0]
    try:
        # The group settles first: then the only rebalance is the kill's.
        wait_for(lambda: [len(m["partitions"]) for m in
                          kafka.describe_group("many")["members"]]
                 == [2, 2, 2], timeout=60, what="three members, two "
                 "partitions each")
        for i in range(0, n, 10000):
            kafka.produce(src, [json.dumps({"n": j})
                                for j in range(i, i + 10000)],
                          key=[str(j) for j in range(i, i + 10000)])
        ends = kafka.topic_offsets(src)
        assert sum(ends.values()) == n
        end = time.monotonic() + 90
        while True:
            seen = ledger.read_text().count("\n") if ledger.exists() else 0
            if seen >= n // 4:
                break
            assert time.monotonic() < end, "the run did not get going"
            assert all(p.poll() is None for p in procs), \
                [stderr_of(p)[-2000:] for p in procs]
            time.sleep(0.05)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        wait_for(lambda: kafka.committed_offsets("many", src) == ends,
                 timeout=180, what="every offset committed")
        for p in procs[1:]:
            p.send_signal(signal.SIGTERM)
        for p in procs[1:]:
            assert p.wait(timeout=60) == 0, stderr_of(p)[-3000:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    results = [json.loads(v)["n"] for v in kafka.consume(res)]
    dead = kafka.consume(f"{src}.dead")
    assert dead == []
    # Every message ended in the result topic.
    assert set(results) == set(range(n))
    # The only repeats are messages the killed coordinator had taken.
    runs = collections.defaultdict(list)
    for line in ledger.read_text().splitlines():
        item, pid, _, _ = line.split()
        runs[item].append(int(pid))
    victims = {item for item, pids in runs.items() if victim.pid in pids}
    assert victims and len(victims) < n
    repeats = {item for item, pids in runs.items() if len(pids) > 1}
    assert repeats <= victims, sorted(repeats - victims)[:10]
    counts = collections.Counter(results)
    twice = {k for k, c in counts.items() if c > 1}
    assert len(twice) <= len(repeats)
    print(f"{len(victims)} messages handled by the killed one, "
          f"{len(repeats)} repeated")


def test_a_result_the_broker_refuses_is_dead_not_held(kafka, tmp):
    """The result topic takes messages of at most 1000 bytes while the
    producer may send 1 MB: librdkafka sends the large result and the
    broker refuses it in its delivery report, and would every time. That
    item dies with the broker's error, the others are done, and the run
    ends: a result the broker never takes must not hold the run as a sink
    outage does (before, the run waited for it forever)."""
    res = "refused-out"
    kafka.create_topic(res, config={"max.message.bytes": 1000})
    src = write_jsonl(tmp / "in.jsonl", [
        {"n": 0}, {"n": 1}, {"n": 2, "big": "x" * 3000}, {"n": 3},
        {"n": 4}])
    dead = tmp / "dead.jsonl"
    code, _, err = hopper(
        "run", "-s", f"jsonl:{src}", "-S", f"dead={dead}",
        "-o", f"kafka://{kafka.bootstrap}/{res}", "--", *FAKE,
        cwd=tmp, timeout=90)
    assert code == 3, err[-3000:]
    assert "finished: 4 done, 1 dead" in err, err[-3000:]
    [letter] = read_jsonl(dead.read_text())
    assert letter["payload"]["n"] == 2, letter
    assert letter["error"] == \
        f"kafka sink: {res}: Broker: Message size too large", letter
    assert letter["attempts"] == 1 and letter["permanent"], letter
    # Every other result is on the topic (a result written again while
    # the refused one was in its flush may be there twice).
    got = [json.loads(v)["echo"]["n"] for v in kafka.consume(res)]
    assert set(got) == {0, 1, 3, 4}, got
