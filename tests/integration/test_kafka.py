"""The kafka source and sink against a real Apache Kafka broker started by
tests/harness: a group's run from topic to topic, dead letters, offsets
that never pass an unfinished message, and clear errors."""
import json
import signal
import urllib.request

import pytest

from conftest import FAKE, KAFKA_QUICK, hopper, start, stop, wait_for


def topics(kafka, name, partitions=1):
    src, res = f"{name}-in", f"{name}-out"
    kafka.create_topic(src, partitions=partitions)
    kafka.create_topic(res, partitions=1)
    kafka.create_topic(f"{src}.dead", partitions=1)
    return src, res


def between(kafka, src, res, group):
    """The flags of a run from topic src to topic res in group; the group
    forgets a killed member soon."""
    return ["run", "-s", f"kafka://{kafka.bootstrap}/{src}", "-S",
            f"group={group}", "-S", f"config={KAFKA_QUICK}", "-o",
            f"kafka://{kafka.bootstrap}/{res}"]


def run(kafka, src, res, *flags, group="g"):
    return hopper(*between(kafka, src, res, group), "--backoff", "0.05",
                  *flags, "--", *FAKE)


def test_a_topic_through_a_worker_to_a_topic(kafka):
    src, res = topics(kafka, "round", partitions=3)
    n = 300
    kafka.produce(src, [json.dumps({"n": i}) for i in range(n)],
                  key=[f"k{i}" for i in range(n)])
    code, out, err = run(kafka, src, res, "-j", "2", "--prefetch", "4",
                         group="round")
    assert code == 0, err
    got = [json.loads(v) for v in kafka.consume(res)]
    assert sorted(r["echo"]["n"] for r in got) == list(range(n))
    ends = kafka.topic_offsets(src)
    assert sum(ends.values()) == n
    assert kafka.committed_offsets("round", src) == ends


def test_dead_letters_keep_the_value_and_never_stop_a_partition(kafka):
    src, res = topics(kafka, "dead")
    values = [json.dumps({"n": 0}), "not json {", json.dumps({"do": "perm"}),
              json.dumps({"do": "fail"}), json.dumps({"n": 4})]
    kafka.produce(src, values)
    code, out, err = run(kafka, src, res, "--attempts", "2", group="dead")
    assert code == 3, err
    assert "value is not JSON" in err
    assert sorted(json.loads(v)["echo"]["n"] for v in kafka.consume(res)) \
        == [0, 4]
    assert sorted(kafka.consume(f"{src}.dead")) == sorted(values[1:4])
    assert kafka.committed_offsets("dead", src) == {0: 5}


def test_the_committed_offset_never_passes_an_unfinished_message(kafka, tmp):
    """Partition 0: ten quick messages, one that sleeps, 29 quick ones. The
    commit reaches the sleeper's offset and stops there while every quick
    one after it is done. A message on partition 1 handled after all of
    them is committed in a later commit than theirs would have been, so
    once partition 1's offset is committed, partition 0's is known to have
    stayed at the sleeper."""
    import os
    from conftest import clean_env
    src, res = topics(kafka, "order", partitions=2)
    sleeper = json.dumps({"do": "sleep", "secs": 120})
    kafka.produce(src, [json.dumps({"n": i}) for i in range(10)] +
                  [sleeper] + [json.dumps({"n": i}) for i in range(11, 40)],
                  partition=0)
    log = tmp / "log"
    p = start(*between(kafka, src, res, "order"), "--watch", "-j", "2",
              "--", *FAKE, cwd=tmp, env=clean_env(FAKE_LOG=log))
    try:
        wait_for(lambda: len(kafka.consume(res)) == 39, timeout=120,
                 what="the 39 quick ones")
        wait_for(lambda: kafka.committed_offsets("order", src) == {0: 10},
                 timeout=60, what="partition 0 committed up to the sleeper")
        kafka.produce(src, [json.dumps({"n": 100})], partition=1)
        wait_for(lambda: 1 in kafka.committed_offsets("order", src),
                 timeout=60, what="partition 1's message committed")
        assert kafka.committed_offsets("order", src) == {0: 10, 1: 1}
        assert p.poll() is None
    finally:
        p.kill()
        p.wait()
        # The sleeping worker outlives a killed coordinator: end it too.
        for line in log.read_text().splitlines():
            if line.startswith(f"start {src}/0/10 "):
                try:
                    os.kill(int(line.split()[3]), 9)
                except ProcessLookupError:
                    pass
    # The next run takes partition 0 from the sleeper again; together the
    # runs cover every message.
    code, _, err = hopper(*between(kafka, src, res, "order"), "-j", "2",
                          "--timeout", "1", "--attempts", "1", "--", *FAKE)
    assert code == 3, err  # the sleeper times out and is dead this time
    assert kafka.committed_offsets("order", src) == {0: 40, 1: 1}
    done = {json.loads(v)["echo"]["n"] for v in kafka.consume(res)}
    assert done == set(range(40)) - {10} | {100}
    assert kafka.consume(f"{src}.dead") == [sleeper]


def test_clear_errors(kafka):
    code, _, err = hopper("run", "-s", f"kafka://{kafka.bootstrap}/nope",
                          "--", *FAKE)
    assert code == 1 and "kafka source: nope:" in err
    code, _, err = hopper("run", "-s", "kafka://127.0.0.1:1/x",
                          "-S", "config=socket.connection.setup.timeout.ms="
                          "1000", "--", *FAKE)
    assert code == 1 and "kafka source: 127.0.0.1:1:" in err
    code, _, err = hopper("run", "-s", "kafka://nohost", "--", *FAKE)
    assert code == 1 and "expected kafka://host:port/topic" in err
    src, _ = topics(kafka, "errs")
    code, _, err = hopper("run", "-s", f"kafka://{kafka.bootstrap}/{src}",
                          "-o", f"kafka://{kafka.bootstrap}/missing-out",
                          "--", *FAKE)
    assert code == 1 and "kafka sink: missing-out:" in err


def test_a_missing_dead_letter_topic_is_refused_at_start(kafka):
    """Once, a missing dead-letter topic let the run start: dead messages
    stayed unacknowledged, the commit stopped at the first of them, the
    run still said "dead" and every run repeated from there."""
    src, res = "nodlq-in", "nodlq-out"
    kafka.create_topic(src)
    kafka.create_topic(res)
    kafka.produce(src, [json.dumps({"n": 0}), "not json {"])
    code, out, err = run(kafka, src, res, group="nodlq")
    assert code == 1, err
    assert f"kafka source: dead-letter topic {src}.dead: " in err
    assert "-S dead_topic=TOPIC" in err and "-S dead_create=true" in err
    assert "finished:" not in err  # refused before taking anything
    assert kafka.consume(res) == []
    assert kafka.committed_offsets("nodlq", src) == {}
    assert f"{src}.dead" not in kafka.list_topics()


def test_dead_create_makes_the_dead_letter_topic(kafka):
    src, res = "mkdlq-in", "mkdlq-out"
    kafka.create_topic(src)
    kafka.create_topic(res)
    kafka.produce(src, [json.dumps({"n": 0}), "not json {",
                        json.dumps({"n": 2})])
    code, out, err = run(kafka, src, res, "-S", "dead_create=true",
                         group="mkdlq")
    assert code == 3, err
    assert f"created the dead-letter topic {src}.dead" in err
    assert "finished: 2 done, 1 dead" in err
    assert kafka.consume(f"{src}.dead") == ["not json {"]
    assert kafka.committed_offsets("mkdlq", src) == {0: 3}
    # It exists now: a second coordinator finds it and creates nothing.
    kafka.produce(src, ["not json either"])
    code, out, err = run(kafka, src, res, "-S", "dead_create=true",
                         group="mkdlq")
    assert code == 3 and "created the" not in err, err
    assert kafka.consume(f"{src}.dead") == ["not json {", "not json either"]
    assert kafka.committed_offsets("mkdlq", src) == {0: 4}


def test_the_dead_letter_producer_gets_no_consumer_settings(kafka):
    """The source's config serves its consumer and its dead-letter
    producer. Once, the producer was given the consumer's settings too,
    and librdkafka warned on every start that it would ignore them."""
    src, res = topics(kafka, "confwarn")
    kafka.produce(src, [json.dumps({"n": 0}), "not json {"])
    config = KAFKA_QUICK + ",isolation.level=read_committed,linger.ms=5"
    code, out, err = hopper(
        "run", "-s", f"kafka://{kafka.bootstrap}/{src}", "-S",
        "group=confwarn", "-S", f"config={config}", "-o",
        f"kafka://{kafka.bootstrap}/{res}", "--", *FAKE)
    assert code == 3, err
    assert "finished: 1 done, 1 dead" in err
    assert kafka.consume(f"{src}.dead") == ["not json {"]
    assert "CONFWARN" not in err, err


def test_a_dead_letter_the_broker_refuses_is_not_dead(kafka):
    """The dead-letter topic takes messages of at most 1000 bytes; the
    poison message is bigger, so its dead letter fails at the broker. It
    must stay unacknowledged (the commit stops before it, every run takes
    it again) and not count as dead."""
    src, res = "bigdlq-in", "bigdlq-out"
    kafka.create_topic(src)
    kafka.create_topic(res)
    kafka.create_topic(f"{src}.dead", config={"max.message.bytes": 1000})
    poison = "not json " + "x" * 2000
    kafka.produce(src, [json.dumps({"n": 0}), poison, json.dumps({"n": 2})])
    for done in (2, 1):  # the second run starts at the poison message
        code, out, err = run(kafka, src, res, group="bigdlq")
        assert code == 1, err
        assert f"kafka source: dead-letter topic {src}.dead: " in err
        assert f"message {src}/0/1 stays unacknowledged" in err
        assert f"finished: {done} done, 0 dead" in err
        assert "1 item(s) failed for good but their dead letters could " \
            "not be written" in err
        assert kafka.committed_offsets("bigdlq", src) == {0: 1}
        assert kafka.consume(f"{src}.dead") == []
    # The message after the poison one was done twice: at least once.
    done = [json.loads(v)["echo"]["n"] for v in kafka.consume(res)]
    assert sorted(done) == [0, 2, 2]


def test_a_dead_letter_topic_deleted_mid_run(kafka, tmp):
    """The topic is there at start and gone when a message dies: the
    message stays unacknowledged and is not counted dead; once the topic
    is back, the next run dead-letters it."""
    from conftest import stderr_of
    src, res = "gone-in", "gone-out"
    topics(kafka, "gone")
    p = start(*between(kafka, src, res, "gone"), "--watch", "--", *FAKE,
              cwd=tmp)
    try:
        kafka.produce(src, [json.dumps({"n": 0})])
        wait_for(lambda: len(kafka.consume(res)) == 1, timeout=60,
                 what="the first result")
        kafka.delete_topic(f"{src}.dead")
        kafka.produce(src, ["not json"])
        wait_for(lambda: f"message {src}/0/1 stays unacknowledged"
                 in stderr_of(p), timeout=120,
                 what="the failed dead letter")
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=60) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    err = stderr_of(p)
    assert f"kafka source: dead-letter topic {src}.dead: " in err
    assert "finished: 1 done, 0 dead" in err, err
    assert kafka.committed_offsets("gone", src) == {0: 1}
    kafka.create_topic(f"{src}.dead")
    code, _, err = run(kafka, src, res, group="gone")
    assert code == 3 and "finished: 0 done, 1 dead" in err, err
    assert kafka.consume(f"{src}.dead") == ["not json"]
    assert kafka.committed_offsets("gone", src) == {0: 2}


def test_killed_at_random_points_the_commit_never_passes_a_result(kafka,
                                                                   tmp):
    """Items take 0 to 60 ms and finish out of order; the coordinator is
    killed at random moments (after a random number of items more, so
    that each run gets that far on any machine). Every offset below a
    committed one has its result in the result topic, and the runs
    together cover every message."""
    import random
    from conftest import PY, WORKERS, clean_env
    src, res = topics(kafka, "kills", partitions=2)
    n = 400
    kafka.produce(src, [json.dumps({"n": i}) for i in range(n)],
                  key=[str(i) for i in range(n)])
    where = {json.loads(r["value"])["n"]: (r["partition"], r["offset"])
             for r in kafka.consume_records(src)}
    env = clean_env(LEDGER=tmp / "ledger", LEDGER_SLEEP_MAX="0.06")
    worker = [PY, str(WORKERS / "ledger.py")]
    rng = random.Random(7)
    ledger = tmp / "ledger"

    def handled():
        return ledger.read_bytes().count(b"\n") if ledger.exists() else 0
    for _ in range(4):
        p = start(*between(kafka, src, res, "kills"), "-j", "3",
                  "--prefetch", "4", "--", *worker, env=env, cwd=tmp)
        target = handled() + rng.randint(20, 70)
        wait_for(lambda: handled() >= target, timeout=120,
                 what=f"{target} items handled")
        p.send_signal(signal.SIGKILL)
        p.wait()
        committed = kafka.committed_offsets("kills", src)
        done = {json.loads(v)["n"] for v in kafka.consume(res)}
        for i, (part, off) in where.items():
            if off < committed.get(part, 0):
                assert i in done, (i, part, off, committed)
    code, _, err = hopper(*between(kafka, src, res, "kills"), "-j", "3",
                          "--", *worker, env=env)
    assert code == 0, err
    assert {json.loads(v)["n"] for v in kafka.consume(res)} == set(range(n))
    assert kafka.committed_offsets("kills", src) == kafka.topic_offsets(src)


def test_headers_reach_the_worker_and_the_dead_letters(kafka):
    import subprocess
    src, res = topics(kafka, "hdrs")
    for value in ('{"n": 1}', 'not json'):
        subprocess.run(["kcat", "-P", "-b", kafka.bootstrap, "-t", src,
                        "-H", "trace=abc", "-k", "k1"], input=value + "\n",
                       text=True, check=True)
    code, _, err = run(kafka, src, res, "-S", "headers=true",
                       group="hdrs")
    assert code == 3, err
    got = json.loads(kafka.consume(res)[0])["echo"]
    assert got["value"] == {"n": 1} and got["key"] == "k1"
    assert got["headers"] == {"trace": "abc"}
    assert got["topic"] == src and got["offset"] == 0
    out = subprocess.run(["kcat", "-C", "-b", kafka.bootstrap, "-t",
                          f"{src}.dead", "-o", "beginning", "-e", "-q",
                          "-f", "%k|%s|%h\n"], capture_output=True,
                         text=True, check=True).stdout.strip()
    key, value, headers = out.split("|", 2)
    assert key == "k1" and value == "not json"
    assert "trace=abc" in headers and "value is not JSON" in headers
    # Never sent to a worker: no attempts.
    assert "hopper-attempts=0" in headers and "hopper-offset=1" in headers
    assert f"hopper-topic={src}" in headers


def ledger_runs(ledger):
    """{item id: [coordinator pid, ...]} from a ledger worker's file."""
    import collections
    runs = collections.defaultdict(list)
    if ledger.exists():
        for line in ledger.read_text().splitlines():
            item, pid, _, _ = line.split()
            runs[item].append(int(pid))
    return runs


@pytest.mark.parametrize("grace", ["20s", "0"])
def test_a_revoked_partition_lets_its_items_in_flight_finish(kafka, tmp,
                                                              grace):
    """A second coordinator joins the group while the first holds items of
    every partition in its workers' hands (each takes 2 s). With a grace
    longer than they need, the first finishes them and commits before it
    gives its partitions up: nothing is handled twice, and what it had
    taken but not handed out goes to the newcomer. Without a grace, the
    newcomer repeats what was in flight."""
    import re
    from conftest import PY, WORKERS, clean_env, stderr_of
    group = f"revoke{grace}"
    src, res = topics(kafka, group, partitions=4)
    ledger = tmp / "ledger"
    env = clean_env(LEDGER=ledger, LEDGER_SLEEP="2")
    worker = [PY, str(WORKERS / "ledger.py")]
    flags = [*between(kafka, src, res, group), "-S", f"revoke_grace={grace}",
             "--watch"]

    def produce(first):
        for p in range(4):
            kafka.produce(src, [json.dumps({"n": first + p * 8 + i})
                                for i in range(8)], partition=p)
    produce(0)
    # 8 workers with 4 items each: the first 32 messages all in flight.
    a = start(*flags, "-j", "8", "--prefetch", "4", "--listen",
              "127.0.0.1:0", "--", *worker, env=env, cwd=tmp)
    b = None
    try:
        wait_for(lambda: "assigned 4 partition(s)" in stderr_of(a),
                 timeout=30, what="the first coordinator's partitions")
        port = re.search(r"on http://127\.0\.0\.1:(\d+)", stderr_of(a))[1]

        def all_in_flight():
            url = f"http://127.0.0.1:{port}/metrics"
            with urllib.request.urlopen(url, timeout=5) as r:
                return "\nhopper_items_in_flight 32\n" in r.read().decode()
        # Every partition's 8 messages in the workers' hands (4 each, 2 s
        # an item: 8 s of work) before the second coordinator joins, so
        # that the moved partitions have items at stake.
        wait_for(all_in_flight, timeout=30, what="32 items in flight")
        produce(32)  # taken by the first, not handed out: no room
        b = start(*flags, "-j", "8", "--", *worker, env=env, cwd=tmp)
        ends = kafka.topic_offsets(src)
        wait_for(lambda: kafka.committed_offsets(group, src) == ends,
                 timeout=90, what="every offset committed")
        wait_for(lambda: len(ledger_runs(ledger)) == 64, timeout=30,
                 what="every message handled")
    finally:
        stop(a, b)
    log = stderr_of(a)
    gave = re.search(r"gave up (\d+) partition\(s\) of \S+ after [\d.]+ s: "
                     r"(\d+) item", log)
    assert gave and gave[1] == "2", log[-3000:]
    runs = ledger_runs(ledger)
    assert len(runs) == 64
    repeats = {i for i, pids in runs.items() if len(pids) > 1}
    by_b = {i for i, pids in runs.items() if b.pid in pids}
    if grace == "0":
        # Given up at once with items in flight: the newcomer repeats them.
        assert int(gave[2]) > 0, log[-3000:]
        assert repeats, "without a grace, the items in flight come again"
        return
    # Something was at stake: items of the moved partitions in flight.
    m = re.search(r"revoking 2 partition\(s\) of \S+: (\d+) item\(s\) in "
                  r"flight", log)
    assert m and int(m[1]) > 0, log[-3000:]
    assert gave[2] == "0", log[-3000:]
    assert not repeats, sorted(repeats)
    # The newcomer got what the first had taken but not handed out.
    assert by_b and all(int(i.split("/")[2]) >= 8 for i in by_b), by_b
    assert {json.loads(v)["n"] for v in kafka.consume(res)} == set(range(64))


def test_depth_is_the_backlog_not_yet_handed_out(kafka, tmp):
    """A topic of 200 messages and one slow worker: the depth the source
    reports (logged at debug level when it changes by a tenth) starts
    near 200 and falls to 0."""
    import re
    from conftest import PY, WORKERS, clean_env, stderr_of
    src, res = topics(kafka, "depth")
    n = 200
    kafka.produce(src, [json.dumps({"n": i}) for i in range(n)])
    env = clean_env(LEDGER=tmp / "ledger", LEDGER_SLEEP="0.02")
    p = start(*between(kafka, src, res, "depth"), "--watch", "--log-level",
              "debug", "-j", "1", "--prefetch", "1", "--",
              PY, str(WORKERS / "ledger.py"), env=env, cwd=tmp)

    def depths():
        return [int(d) for d in
                re.findall(r"kafka source: depth (\d+)", stderr_of(p))]
    try:
        wait_for(lambda: depths() and max(depths()) > 0 and
                 depths()[-1] == 0, timeout=60, what="depth back to 0")
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    d = depths()
    top = d.index(max(d))
    assert d[top] >= n * 0.9, d
    after = d[top:]
    assert after == sorted(after, reverse=True) and after[-1] == 0, d
    assert len(after) >= 5, d  # it fell step by step, as the worker went


def test_the_read_ahead_stays_within_its_buffer(kafka):
    """Messages are copied out of librdkafka into a read-ahead of `buffer`
    bytes; once it is full the partitions are paused (and resumed when a
    quarter is free), so what is held never grows with the topic. 1,500
    values of 2 KiB through a 64 KiB read-ahead: every one arrives once,
    the source paused and resumed, and never held more than fits."""
    import re
    src, res = topics(kafka, "ahead", partitions=3)
    n, pad = 1500, "x" * 2048
    kafka.produce(src, [json.dumps({"n": i, "pad": pad}) for i in range(n)])
    code, out, err = run(kafka, src, res, "-S", "buffer=64K", "-j", "2",
                         "--prefetch", "8", "--log-level", "debug",
                         group="ahead")
    assert code == 0, err[-2000:]
    got = [json.loads(v)["echo"]["n"] for v in kafka.consume(res)]
    assert sorted(got) == list(range(n))
    held = [int(x) for x in
            re.findall(r"kafka source: pausing: \d+ out, (\d+) read ahead",
                       err)]
    assert held, "the read-ahead never filled"
    assert "kafka source: resuming" in err
    # A record is its value, key and headers plus 32 bytes of its own; one
    # more may land before the pause.
    assert max(held) <= 64 * 1024 // 2060 + 1, held
    ends = {p: o for p, o in kafka.topic_offsets(src).items() if o}
    assert kafka.committed_offsets("ahead", src) == ends


def test_a_rebalance_is_served_while_the_read_ahead_is_full(kafka, tmp):
    """With a read-ahead of 1 KiB the first coordinator's partitions are
    paused most of the time; polling goes on for the group's events, so a
    second coordinator joining is given partitions, and between them every
    message is handled and every offset committed."""
    from conftest import PY, WORKERS, clean_env, stderr_of
    group = "fullahead"
    src, res = topics(kafka, group, partitions=4)
    pad = "y" * 300
    for p in range(4):
        kafka.produce(src, [json.dumps({"n": p * 50 + i, "pad": pad})
                            for i in range(50)], partition=p)
    ledger = tmp / "ledger"
    env = clean_env(LEDGER=ledger, LEDGER_SLEEP="0.05")
    worker = [PY, str(WORKERS / "ledger.py")]
    flags = [*between(kafka, src, res, group), "--watch", "-j", "2"]
    a = start(*flags, "-S", "buffer=1K", "--log-level", "debug", "--",
              *worker, env=env, cwd=tmp)
    b = None
    try:
        wait_for(lambda: "kafka source: pausing" in stderr_of(a),
                 timeout=30, what="the first coordinator's read-ahead full")
        b = start(*flags, "--", *worker, env=env, cwd=tmp)
        wait_for(lambda: b.pid in {pid for pids in ledger_runs(ledger).values()
                                   for pid in pids},
                 timeout=60, what="the second coordinator at work")
        ends = kafka.topic_offsets(src)
        wait_for(lambda: kafka.committed_offsets(group, src) == ends,
                 timeout=120, what="every offset committed")
    finally:
        stop(a, b)
    log = stderr_of(a)
    assert "gave up 2 partition(s)" in log, log[-3000:]
    assert set(ledger_runs(ledger)) == \
        {f"{src}/{p}/{i}" for p in range(4) for i in range(50)}
    assert {json.loads(v)["n"] for v in kafka.consume(res)} == set(range(200))
