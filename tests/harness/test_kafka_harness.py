"""Tests of the Kafka test harness itself (tests/harness/kafka.py).

They start a real Apache Kafka broker (KRaft, one node, loopback); the first
run fetches the jars with Maven.  Run:

    python3 -m pytest -q tests/harness/test_kafka_harness.py
"""

import os
import socket
import sys
import time
from pathlib import Path

import pytest

try:  # tests/harness is a package (tests/harness/__init__.py)
    from .kafka import KafkaBroker, KafkaHarnessError, kafka  # noqa: F401  (fixture)
except ImportError:  # rootdir-relative import of a plain directory
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from kafka import KafkaBroker, KafkaHarnessError, kafka  # noqa: F401  (fixture)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _java_procs_mentioning(text):
    """PIDs of java processes whose command line mentions ``text``."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"java") and any(text.encode() in a for a in argv):
            found.append(int(d))
    return found


def test_broker_is_up(kafka):
    host, port = kafka.bootstrap.split(":")
    assert host == "127.0.0.1" and int(port) == kafka.port
    with socket.create_connection((host, int(port)), timeout=2):
        pass
    assert kafka.is_running()
    assert "auto.create.topics.enable=false" in (kafka.tmpdir / "server.properties").read_text()
    assert (kafka.tmpdir / "data" / "meta.properties").is_file()  # formatted by StorageTool
    print(f"\nbroker {kafka.bootstrap} ready in {kafka.start_seconds:.2f}s")


def test_roundtrip_1000_lines_three_partitions(kafka):
    kafka.create_topic("roundtrip", partitions=3)
    assert "roundtrip" in kafka.list_topics()
    lines = [f'{{"n": {i}, "path": "/videos/{i:05d}.mp4"}}' for i in range(1000)]
    t = time.monotonic()
    assert kafka.produce("roundtrip", lines, key=[str(i) for i in range(1000)]) == 1000
    produced = time.monotonic() - t

    t = time.monotonic()
    got = kafka.consume("roundtrip", max_messages=1000, timeout=20)
    consumed = time.monotonic() - t
    assert sorted(got) == sorted(lines)

    ends = kafka.topic_offsets("roundtrip")
    assert set(ends) == {0, 1, 2} and sum(ends.values()) == 1000
    assert all(n > 0 for n in ends.values()), ends  # keys spread the lines
    assert kafka.topic_offsets("roundtrip", "earliest") == {0: 0, 1: 0, 2: 0}

    # max_messages=None reads exactly what is there, without waiting out the timeout
    t = time.monotonic()
    recs = kafka.consume_records("roundtrip", timeout=20)
    assert time.monotonic() - t < 10
    assert len(recs) == 1000
    for p in range(3):
        offs = [r["offset"] for r in recs if r["partition"] == p]
        assert offs == list(range(ends[p]))
    assert {r["key"] for r in recs} == {str(i) for i in range(1000)}
    print(f"\nproduce 1000: {produced:.3f}s, consume 1000: {consumed:.3f}s")


def test_produce_key_partition_and_limits(kafka):
    kafka.create_topic("misc", partitions=2)
    assert kafka.produce("misc", ["a", "b", "c"], key="same") == 3
    assert kafka.produce("misc", ["d"], partition=1) == 1
    assert kafka.produce("misc", []) == 0
    recs = kafka.consume_records("misc")
    assert len({r["partition"] for r in recs if r["key"] == "same"}) == 1
    assert [r["value"] for r in recs if r["key"] == "same"] == ["a", "b", "c"]
    assert sum(kafka.topic_offsets("misc").values()) == 4

    assert len(kafka.consume("misc", max_messages=2, timeout=10)) == 2
    t = time.monotonic()
    assert len(kafka.consume("misc", max_messages=10, timeout=0.5)) == 4  # only 4 exist
    assert 0.4 < time.monotonic() - t < 5

    with pytest.raises(KafkaHarnessError):
        kafka.produce("no-such-topic", ["x"], timeout=5)
    with pytest.raises(KafkaHarnessError):
        kafka.create_topic("misc", partitions=2)  # exists


def test_consumer_group_offsets(kafka):
    kafka.create_topic("grouped", partitions=3)
    assert kafka.committed_offsets("nobody", "grouped") == {}
    kafka.set_committed_offsets("g1", "grouped", {0: 5, 2: 7})
    assert kafka.committed_offsets("g1", "grouped") == {0: 5, 2: 7}
    assert kafka.committed_offsets("g1", "other-topic") == {}
    assert kafka.describe_group("g1") == {"state": "Empty", "members": []}


def test_kill_restart_stop_cleans_up():
    b = KafkaBroker()
    with b:
        b.create_topic("durable", partitions=3)
        b.produce("durable", [f"m{i}" for i in range(300)], key=[str(i) for i in range(300)])
        broker_pid, client_pid, tmp, port = b.pid, b.client_pid, b.tmpdir, b.port
        assert tmp.is_dir() and str(tmp) in (b.log_path.as_posix())

        b.kill()
        assert not _alive(broker_pid) and not b.is_running()
        b.restart()
        assert b.port == port and b.pid != broker_pid
        print(f"\nrestart after SIGKILL ready in {b.start_seconds:.2f}s")
        assert sorted(b.consume("durable", timeout=20)) == sorted(f"m{i}" for i in range(300))
        new_pid = b.pid
        assert set(b.pids()) == {new_pid, client_pid}

    # stop(): no JVM of ours left, no temp dir
    for pid in (broker_pid, new_pid, client_pid):
        assert not _alive(pid), pid
    assert _java_procs_mentioning(str(tmp)) == []
    assert not tmp.exists()
    assert b.pids() == [] and b.tmpdir is None
    b.stop()  # idempotent
    with pytest.raises(KafkaHarnessError):
        b.bootstrap


def test_failed_start_reports_log_tail_and_cleans_up():
    b = KafkaBroker(config={"num.io.threads": "not-a-number"})
    with pytest.raises(KafkaHarnessError) as e:
        b.start()
    assert "exited with status" in str(e.value) and "num.io.threads" in str(e.value)
    assert b.pids() == [] and b.tmpdir is None
