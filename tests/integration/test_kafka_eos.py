"""Exactly once from topic to topic against a real Kafka broker: the kafka
source's transactions, which the kafka sink's results and the dead letters
join; and keys placed in partitions with murmur2, as Java clients do."""
import collections
import json
import random
import signal
import subprocess

from conftest import (KAFKA_QUICK, PY, WORKERS, clean_env, hopper, start,
                      stderr_of, stop, wait_for)

EOS = [PY, str(WORKERS / "eos.py")]


def read(kafka, topic, committed=True):
    """Every record of topic as (partition, key, value), read by kcat with
    the isolation level asked for."""
    level = "read_committed" if committed else "read_uncommitted"
    out = subprocess.run(
        ["kcat", "-C", "-b", kafka.bootstrap, "-t", topic, "-o", "beginning",
         "-e", "-q", "-X", f"isolation.level={level}", "-f", "%p\t%k\t%s\n"],
        capture_output=True, text=True, timeout=60, check=True).stdout
    return [tuple(line.split("\t", 2)) for line in out.splitlines()]


def flags(kafka, src, res, group, *more):
    return ["run", "-s", f"kafka://{kafka.bootstrap}/{src}", "-S",
            f"group={group}", "-S", f"config={KAFKA_QUICK}", "-S",
            "exactly_once=true", *more, "-o", f"kafka://{kafka.bootstrap}/{res}",
            "-O", "exactly_once=true"]


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (the Java client's Utils.murmur2), as a signed
    32-bit value's bits in an unsigned int."""
    m, mask = 0x5BD1E995, 0xFFFFFFFF
    n = len(data)
    h = (0x9747B28C ^ n) & mask
    whole = n - n % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & mask
        k ^= k >> 24
        k = (k * m) & mask
        h = ((h * m) & mask) ^ k
    rest = n % 4
    if rest == 3:
        h ^= data[whole + 2] << 16
    if rest >= 2:
        h ^= data[whole + 1] << 8
    if rest >= 1:
        h ^= data[whole]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h


def java_partition(key: str, partitions: int) -> int:
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def test_murmur2_here_is_the_java_clients(kafka):
    """The Java client places keys; the function above agrees with it."""
    kafka.create_topic("m2-java", partitions=7)
    keys = [f"user-{i}" for i in range(60)] + ["", "a", "ab", "abc", "é"]
    kafka.produce("m2-java", ["x"] * len(keys), key=keys)
    for r in kafka.consume_records("m2-java"):
        assert r["partition"] == java_partition(r["key"], 7), r


def test_keys_pick_partitions_with_murmur2(kafka, tmp):
    """Outputs keyed by their emit's key land where the Java client would
    put them, and results without one by the item's id."""
    kafka.create_topic("m2-in", partitions=2)
    kafka.create_topic("m2-in.dead")
    kafka.create_topic("m2-out", partitions=6)
    n = 40
    kafka.produce("m2-in", [json.dumps({"n": i, "parts": 3})
                            for i in range(n)])
    code, _, err = hopper(
        "run", "-s", f"kafka://{kafka.bootstrap}/m2-in", "-S", "group=m2",
        "-o", f"kafka://{kafka.bootstrap}/m2-out", "-j", "2", "--", *EOS)
    assert code == 0, err
    got = read(kafka, "m2-out")
    assert len(got) == 3 * n
    keys = set()
    for part, key, value in got:
        v = json.loads(value)
        assert key == f"{v['n']}-{v['j']}"
        assert int(part) == java_partition(key, 6), (part, key)
        keys.add(key)
    assert len({java_partition(k, 6) for k in keys}) == 6


def ledger_count(path):
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_an_aborted_transaction_is_invisible_to_read_committed(kafka, tmp):
    """The first item is written while the second waits at a gate, so the
    batch cannot commit. Its output is in the log, not visible to
    read_committed readers. Killed and started again with the gate open,
    the run commits each output once: the raw log holds the first one
    twice, read_committed readers see it once."""
    src, res = "ab-in", "ab-out"
    kafka.create_topic(src)
    kafka.create_topic(res)
    kafka.create_topic(f"{src}.dead")
    kafka.produce(src, [json.dumps({"n": 0, "parts": 1}),
                        json.dumps({"n": 1, "parts": 1, "wait": True})])
    gate = tmp / "gate"
    env = clean_env(GATE=gate)
    args = flags(kafka, src, res, "ab", "-S", "transactional_id=ab-1")
    p = start(*args, "--watch", "-j", "2", "--", *EOS, env=env, cwd=tmp)
    try:
        wait_for(lambda: len(read(kafka, res, committed=False)) == 1,
                 timeout=60, what="the first output in the log")
        assert read(kafka, res) == []
        assert kafka.committed_offsets("ab", src) == {}
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    gate.touch()
    code, _, err = hopper(*args, "-j", "2", "--", *EOS, env=env)
    assert code == 0, err
    committed = sorted(json.loads(v)["n"] for _, _, v in read(kafka, res))
    assert committed == [0, 1]
    raw = [json.loads(v)["n"] for _, _, v in read(kafka, res, committed=False)]
    assert sorted(raw) == [0, 0, 1]
    assert kafka.committed_offsets("ab", src) == {0: 2}


def test_killed_again_and_again_each_output_once(kafka, tmp):
    """Two coordinators of one stage, each SIGKILLed in turn mid-run and
    started again under its own transactional.id (so partitions move at
    every kill and start), items emitting two outputs each and finishing
    out of order, some dying. At the end the output topic, read committed,
    holds each output exactly once and the dead-letter topic each dead
    item once; the input is committed to its end."""
    src, res = "kk-in", "kk-out"
    kafka.create_topic(src, partitions=4)
    kafka.create_topic(res, partitions=3)
    kafka.create_topic(f"{src}.dead", partitions=2)
    n = 800
    dead = {i for i in range(n) if i % 37 == 5}
    values = [json.dumps({"n": i, "dead": True} if i in dead
                         else {"n": i, "parts": 2}) for i in range(n)]
    kafka.produce(src, values, key=[str(i) for i in range(n)])
    ledger = tmp / "ledger"
    env = clean_env(LEDGER=ledger, EOS_SLEEP_MAX="0.02")
    rng = random.Random(19)

    def coordinator(name):
        return start(*flags(kafka, src, res, "kk", "-S",
                            f"transactional_id=kk-{name}", "-S", "batch=40"),
                     "--watch", "-j", "3", "--", *EOS, env=env, cwd=tmp)

    procs = {"a": coordinator("a")}
    try:
        wait_for(lambda: ledger_count(ledger) >= 40, timeout=120,
                 what="40 items handled")
        procs["b"] = coordinator("b")  # partitions move to it
        for kill in range(5):
            name = "ab"[kill % 2]
            target = ledger_count(ledger) + rng.randint(40, 90)
            wait_for(lambda: ledger_count(ledger) >= target, timeout=180,
                     what=f"{target} items handled")
            procs[name].send_signal(signal.SIGKILL)
            procs[name].wait()
            procs[name] = coordinator(name)
        want = 2 * (n - len(dead))
        wait_for(lambda: len(read(kafka, res)) >= want, timeout=240,
                 what=f"{want} outputs visible")
        wait_for(lambda: kafka.committed_offsets("kk", src) ==
                 kafka.topic_offsets(src), timeout=120,
                 what="the input committed to its end")
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs.values():
            p.wait(timeout=120)
    outputs = collections.Counter(
        (json.loads(v)["n"], json.loads(v)["j"]) for _, _, v in read(kafka, res))
    dups = {k: c for k, c in outputs.items() if c > 1}
    assert dups == {}
    assert set(outputs) == {(i, j) for i in range(n) if i not in dead
                            for j in range(2)}
    letters = collections.Counter(
        json.loads(v)["n"] for _, _, v in read(kafka, f"{src}.dead"))
    assert {k: c for k, c in letters.items() if c > 1} == {}
    assert set(letters) == dead
    # The kills did cut transactions short: the raw log holds more.
    assert ledger_count(ledger) > n


def test_clear_errors(kafka):
    """A sink asked for exactly once without a source that runs it is
    refused at start, naming why."""
    kafka.create_topic("ce-in")
    kafka.create_topic("ce-in.dead")
    kafka.create_topic("ce-out")
    code, _, err = hopper(
        "run", "-s", f"kafka://{kafka.bootstrap}/ce-in", "-o",
        f"kafka://{kafka.bootstrap}/ce-out", "-O", "exactly_once=true",
        "--", *EOS)
    assert code != 0
    assert "exactly_once is off" in err
    code, _, err = hopper(
        "run", "-s", f"kafka://{kafka.bootstrap}/ce-in", "-S",
        "exactly_once=true", "-o", f"kafka://{kafka.bootstrap}/ce-out",
        "-O", "config=linger.ms=1", "--", *EOS)
    assert code != 0
    assert "give librdkafka settings to the source" in err


def test_a_fenced_producer_stops_the_run_naming_its_id(kafka, tmp):
    """A second coordinator started under the same transactional.id fences
    the first: the first stops with exit status 1 and says why, naming the
    id; the second finishes the topic, each output once."""
    src, res = "fe-in", "fe-out"
    kafka.create_topic(src, partitions=2)
    kafka.create_topic(res)
    kafka.create_topic(f"{src}.dead")
    n = 200
    kafka.produce(src, [json.dumps({"n": i, "parts": 1}) for i in range(n)])
    ledger = tmp / "ledger"
    env = clean_env(LEDGER=ledger, EOS_SLEEP_MAX="0.05")
    args = flags(kafka, src, res, "fe", "-S", "transactional_id=fe-1",
                 "-S", "batch=20")
    first = start(*args, "--watch", "-j", "2", "--", *EOS, env=env, cwd=tmp)
    second = None
    try:
        wait_for(lambda: ledger_count(ledger) >= 30, timeout=120,
                 what="30 items handled")
        second = start(*args, "--watch", "-j", "2", "--", *EOS, env=env,
                       cwd=tmp)
        assert first.wait(timeout=120) == 1
        err = stderr_of(first)
        assert "exactly once" in err and "fe-1" in err, err[-3000:]
        assert "fenced" in err.lower(), err[-3000:]
        wait_for(lambda: len(read(kafka, res)) >= n, timeout=120,
                 what=f"{n} outputs visible")
    finally:
        stop(first, second)
    got = collections.Counter(json.loads(v)["n"] for _, _, v in read(kafka, res))
    assert {k: c for k, c in got.items() if c > 1} == {}
    assert set(got) == set(range(n))


def test_an_abortable_error_aborts_and_redoes_the_batch(kafka, tmp):
    """The broker refuses an output for good the first time (over the
    topic's max.message.bytes), which makes the transaction abortable: it
    is aborted, the batch taken again from the last commit, and the run
    ends with each output once, nothing dead."""
    src, res = "ae-in", "ae-out"
    kafka.create_topic(src)
    kafka.create_topic(res, config={"max.message.bytes": 1000})
    kafka.create_topic(f"{src}.dead")
    n = 30
    kafka.produce(src, [json.dumps({"n": i, "parts": 1, "big": i == 10})
                        for i in range(n)])
    env = clean_env(ONCE=tmp / "once")
    code, _, err = hopper(
        "run", "-s", f"kafka://{kafka.bootstrap}/{src}", "-S", "group=ae",
        "-S", "exactly_once=true", "-o", f"kafka://{kafka.bootstrap}/{res}",
        "-j", "2", "--backoff", "0.05", "--", *EOS, env=env)
    assert code == 0, err[-3000:]
    assert "done again from the last commit" in err, err[-3000:]
    got = collections.Counter(json.loads(v)["n"] for _, _, v in read(kafka, res))
    assert {k: c for k, c in got.items() if c > 1} == {}
    assert set(got) == set(range(n))
    assert kafka.committed_offsets("ae", src) == {0: n}
    assert read(kafka, f"{src}.dead") == []
